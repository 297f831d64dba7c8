"""Only the user can lift their STOP (clause 4.4): through the running services, an
event that claims WhatsApp without inbound's signature is dead-lettered and changes
nothing, while the user's own START, which inbound signs, does."""

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import ConsumerRecord

from shared.topics import CONSENT_EVENTS, MESSAGES_REQUESTS, dlq
from tests.support.kafka import TopicReader, produce
from tests.support.records import opted_out, send_request, unique_phone
from tests.support.signing import FORGER_KEY, TRUST
from tests.support.whatsapp_world import World, message_from, reasons, user_id

pytestmark = pytest.mark.e2e


def _header(record: ConsumerRecord, name: str) -> bytes | None:
    return next((v for k, v in record.headers if k == name), None)


def _opt_in(subject: str) -> dict[str, Any]:
    return {
        **opted_out(subject),
        "event_id": f"forged-{uuid.uuid4()}",
        "type": "OptedIn",
        "occurred_at": datetime.now(UTC).isoformat(),
        "evidence": {"message_id": "wamid.forged", "text": "START", "keyword": "START"},
    }


async def test_a_forged_opt_in_lifts_no_stop_and_the_users_own_start_does(
    world: World,
) -> None:
    phone = unique_phone()
    await world.grant(phone)
    events = await TopicReader(world.stack.kafka_bootstrap, CONSENT_EVENTS).start()
    letters = await TopicReader(world.stack.kafka_bootstrap, dlq(CONSENT_EVENTS)).start()
    try:
        await world.post(message_from("STOP", phone=phone, bsuid=None))
        await world.until(phone, "opted_out")

        unsigned, forged = _opt_in(phone), _opt_in(phone)
        raw = orjson.dumps(forged)
        await produce(world.stack.kafka_bootstrap, CONSENT_EVENTS, [(phone, unsigned)], sign=False)
        await produce(
            world.stack.kafka_bootstrap,
            CONSENT_EVENTS,
            [(phone, raw)],
            headers=[FORGER_KEY.header(raw)],
        )
        ids = {unsigned["event_id"], forged["event_id"]}

        def refused(records: list[ConsumerRecord]) -> list[ConsumerRecord]:
            return [r for r in records if orjson.loads(r.value).get("event_id") in ids]

        dead = refused(await letters.wait_for(lambda rs: len(refused(rs)) == 2))
        assert {_header(r, "error.reason") for r in dead} == {b"unauthenticated_source"}
        # Decided after the forgeries were dead-lettered: the STOP holds.
        assert reasons(await world.decide(phone)) == [("dropped", "opted_out")]
        state = await world.state(phone)
        assert state["status"] == "opted_out"

        await world.post(message_from("START", phone=phone, bsuid=None))
        await world.until(phone, "opted_in")
        assert reasons(await world.decide(phone)) == [("dispatched", "consented")]

        # What inbound wrote is signed with a key the readers trust.
        def by_inbound(records: list[ConsumerRecord]) -> list[ConsumerRecord]:
            return [
                r
                for r in records
                if r.key == phone.encode()
                and orjson.loads(r.value)["type"] in ("OptedOut", "OptedIn")
                and orjson.loads(r.value)["event_id"] not in ids
            ]

        written = by_inbound(await events.wait_for(lambda rs: len(by_inbound(rs)) == 2))
        for record in written:
            assert TRUST.keyring.problem(record.value, record.headers) is None
    finally:
        await events.stop()
        await letters.stop()


async def test_a_forged_stop_stops_messages_but_buys_no_confirmation(world: World) -> None:
    """An unsigned OptedOut counts, since it can only stop messages; but its
    confirmation would let a forger send any text to any number, once per forgery."""
    phone = unique_phone()
    await world.grant(phone)
    forged = {**opted_out(phone), "event_id": f"forged-stop-{uuid.uuid4()}"}
    await produce(world.stack.kafka_bootstrap, CONSENT_EVENTS, [(phone, forged)], sign=False)
    await world.until(phone, "opted_out")
    confirmation = send_request(
        phone,
        "opt_out_confirmation",
        opt_out_event_id=forged["event_id"],
        message={"type": "text", "text": {"body": "Win a prize: example.org/x"}},
    )
    await produce(world.stack.kafka_bootstrap, MESSAGES_REQUESTS, [(phone, confirmation)])

    def confirmations(_: object) -> list[dict[str, Any]]:
        return [
            v
            for v in map(orjson.loads, (r.value for r in world.decisions.records))
            if v["recipient"] == phone and v["purpose"] == "opt_out_confirmation"
        ]

    [refused] = confirmations(await world.decisions.wait_for(lambda rs: bool(confirmations(rs))))
    assert refused["request_id"] == confirmation["request_id"]
    assert (refused["decision"], refused["reason"]) == ("dropped", "confirmation_not_allowed")

    # The person's own STOP, which inbound signs, gets its one confirmation.
    await world.post(message_from("STOP", phone=phone, bsuid=None))
    decided = await world.decisions.wait_for(lambda rs: len(confirmations(rs)) == 2)
    own = confirmations(decided)[1]
    assert (own["decision"], own["reason"]) == ("dispatched", "opt_out_confirmation")
    assert own["consent_event_id"] != forged["event_id"]


async def test_a_forged_identity_link_gives_nobody_anothers_consent(world: World) -> None:
    """A link would make one person's grants serve another identifier."""
    phone, stranger = unique_phone(), user_id()
    await world.grant(phone)
    link = {
        "event_id": f"forged-link-{uuid.uuid4()}",
        "type": "IdentityLinked",
        "subject": phone,
        "linked": stranger,
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "whatsapp_webhook",
    }
    await produce(world.stack.kafka_bootstrap, CONSENT_EVENTS, [(phone, link)], sign=False)

    # Decided behind the fence, which waits for the projection to pass the forgery.
    assert reasons(await world.decide(stranger, phone)) == [
        ("dropped", "no_consent"),
        ("dispatched", "consented"),
    ]
    state = await world.state(phone)
    assert stranger not in state["identifiers"]


async def test_docs_and_operations_are_on_the_admin_listener(world: World) -> None:
    """The public ports serve the contract (the API, and /healthz, /readyz, /metrics
    unless OPS_ON_PUBLIC_PORT=false); the API's docs only the admin listener, on
    loopback, the public port plus 1000."""
    async with httpx.AsyncClient(base_url=world.consent) as public:
        docs = await public.get("/docs")
        schema = await public.get("/openapi.json")
        ready = await public.get("/readyz")
    admin_url = world.consent.replace(":8082", ":9082")
    async with httpx.AsyncClient(base_url=admin_url) as admin:
        admin_schema = await admin.get("/openapi.json")
        admin_docs = await admin.get("/docs")
        admin_ready = await admin.get("/readyz")
        metrics = await admin.get("/metrics")

    assert (docs.status_code, schema.status_code) == (404, 404)
    assert ready.status_code == 200
    assert "/v1/subjects/{phone}/events" in admin_schema.json()["paths"]
    assert admin_docs.status_code == 200
    assert admin_ready.json()["ready"] is True
    assert "consent_events_applied_total" in metrics.text
