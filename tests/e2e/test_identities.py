"""People known by phone number, by WhatsApp user id (BSUID) or both, through the
signed webhook and the real broker, with webhook bodies shaped as Meta sends them
in 2026 (user ids since March, usernames without numbers, system messages)."""

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from shared.topics import CONSENT_EVENTS, MESSAGES_DECISIONS, MESSAGES_OUTBOUND, MESSAGES_REQUESTS
from tests.support.eventually import eventually
from tests.support.kafka import TopicReader, produce
from tests.support.records import consent_granted, send_request, unique_phone
from tests.support.services import ServiceProcess
from tests.support.stack import Stack
from tests.support.webhooks import signed, webhook_body

pytestmark = pytest.mark.e2e


def user_id() -> str:
    return f"RU.{uuid.uuid4().int % 10**20:020d}"


def _now() -> str:
    return str(int(time.time()))


def message_from(text: str, *, phone: str | None, bsuid: str | None, **extra: Any) -> dict:
    """A text message as Meta sends it: `from`/`wa_id` only when it may share the number."""
    contact: dict[str, Any] = {"profile": {"name": "Test"}}
    message: dict[str, Any] = {
        "id": f"wamid.{uuid.uuid4().hex}",
        "timestamp": _now(),
        "type": "text",
        "text": {"body": text},
        **extra,
    }
    if phone is not None:
        contact["wa_id"] = message["from"] = phone[1:]
    if bsuid is not None:
        contact["user_id"] = message["from_user_id"] = bsuid
    return webhook_body({"contacts": [contact], "messages": [message]})


def delivered(phone: str, bsuid: str) -> dict:
    """The status webhooks of a message we sent: sent, delivered, read."""
    statuses = [
        {
            "id": f"wamid.{uuid.uuid4().hex}",
            "status": status,
            "timestamp": _now(),
            "recipient_id": phone[1:],
            "recipient_user_id": bsuid,
        }
        for status in ("sent", "delivered", "read")
    ]
    return webhook_body({"statuses": statuses})


def changed_number(old: str, new: str, old_bsuid: str, new_bsuid: str) -> dict:
    return webhook_body(
        {
            "messages": [
                {
                    "from": old[1:],
                    "id": f"wamid.{uuid.uuid4().hex}",
                    "timestamp": _now(),
                    "type": "system",
                    "system": {
                        "body": f"User Test changed from {old[1:]} to {new[1:]}",
                        "wa_id": new[1:],
                        "type": "user_changed_number",
                        "user_id": new_bsuid,
                        "previous_user_id": old_bsuid,
                    },
                }
            ]
        }
    )


class World:
    """Drives the running system as Meta and another system would."""

    def __init__(self, stack: Stack, services: dict[str, ServiceProcess]) -> None:
        self.stack = stack
        self.inbound = services["inbound"].url
        self.consent = services["consent"].url
        self.decisions = TopicReader(stack.kafka_bootstrap, MESSAGES_DECISIONS)
        self.outbound = TopicReader(stack.kafka_bootstrap, MESSAGES_OUTBOUND)

    async def post(self, body: dict[str, Any]) -> None:
        raw, headers = signed(body)
        async with httpx.AsyncClient(base_url=self.inbound) as http:
            answer = await http.post("/webhooks/whatsapp", content=raw, headers=headers)
        assert answer.status_code == 200, answer.text

    async def state(self, identifier: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.consent) as http:
            answer = await http.get(f"/v1/subjects/{identifier}/consent")
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    async def until(self, identifier: str, status: str, *linked: str) -> dict[str, Any]:
        def done(state: dict[str, Any]) -> bool:
            return state["status"] == status and set(linked) <= set(state["identifiers"])

        return await eventually(lambda: self.state(identifier), done, timeout=30)

    async def grant(self, identifier: str) -> None:
        await produce(
            self.stack.kafka_bootstrap,
            CONSENT_EVENTS,
            [(identifier, consent_granted(identifier, "event_reminder"))],
        )
        await self.until(identifier, "opted_in")

    async def decide(self, *recipients: str) -> list[dict[str, Any]]:
        """Sends a reminder to each recipient; returns their decisions, in that order."""
        asked = [send_request(r) for r in recipients]
        await produce(
            self.stack.kafka_bootstrap, MESSAGES_REQUESTS, [(r["recipient"], r) for r in asked]
        )
        ids = [r["request_id"] for r in asked]
        await self.decisions.wait_for(lambda _: set(ids) <= set(self._decided()))
        decided = self._decided()
        return [decided[i] for i in ids]

    def _decided(self) -> dict[str, dict[str, Any]]:
        return {
            v["request_id"]: v for v in map(orjson.loads, (r.value for r in self.decisions.records))
        }


@pytest.fixture
async def world(stack: Stack, services: dict[str, ServiceProcess]) -> AsyncIterator[World]:
    w = World(stack, services)
    await w.decisions.start()
    await w.outbound.start()
    try:
        yield w
    finally:
        await w.decisions.stop()
        await w.outbound.stop()


def reasons(decisions: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["decision"], d["reason"]) for d in decisions]


async def test_a_stop_by_user_id_once_linked_stops_the_number_and_a_grant_serves_the_id(
    world: World, phone: str
) -> None:
    bsuid = user_id()
    await world.grant(phone)
    await world.post(message_from("Hello", phone=phone, bsuid=bsuid))
    linked = await world.until(bsuid, "opted_in", phone)
    assert linked["identifiers"] == sorted([phone, bsuid])

    [to_id] = await world.decide(bsuid)
    assert (to_id["decision"], to_id["reason"]) == ("dispatched", "consented"), to_id.get("detail")
    await world.outbound.wait_for(
        lambda rs: any(orjson.loads(r.value).get("recipient") == bsuid for r in rs)
    )
    body = next(v for v in world.outbound.values() if v.get("recipient") == bsuid)
    assert "to" not in body, "a send to a user id must not name a number"

    # A user with a username: Meta shares no number with this STOP.
    await world.post(message_from("STOP", phone=None, bsuid=bsuid))
    await world.until(phone, "opted_out")
    assert reasons(await world.decide(phone, bsuid)) == [
        ("dropped", "opted_out"),
        ("dropped", "opted_out"),
    ]
    confirmation = await eventually(
        lambda: _confirmation(world, bsuid), lambda d: d is not None, timeout=30
    )
    assert confirmation is not None
    assert (confirmation["decision"], confirmation["reason"]) == (
        "dispatched",
        "opt_out_confirmation",
    )


async def _confirmation(world: World, recipient: str) -> dict[str, Any] | None:
    await world.decisions.poll()
    return next(
        (
            d
            for d in world._decided().values()
            if d["recipient"] == recipient and d["purpose"] == "opt_out_confirmation"
        ),
        None,
    )


async def test_a_stop_by_an_unlinked_user_id_is_an_opt_out_that_reaches_the_number_once_linked(
    world: World, phone: str
) -> None:
    bsuid = user_id()
    await world.grant(phone)
    await world.post(message_from("СТОП", phone=None, bsuid=bsuid))
    stopped = await world.until(bsuid, "opted_out")
    assert stopped["identifiers"] == [bsuid]
    # Not yet known to be the same person: the number's grant still stands.
    assert reasons(await world.decide(bsuid, phone)) == [
        ("dropped", "opted_out"),
        ("dispatched", "consented"),
    ]

    # The link arrives afterwards, with the statuses of that dispatch.
    await world.post(delivered(phone, bsuid))
    state = await world.until(phone, "opted_out", bsuid)
    assert state["opt_out_event_id"] == stopped["opt_out_event_id"]
    assert reasons(await world.decide(phone)) == [("dropped", "opted_out")]


async def test_a_stop_before_a_number_change_follows_the_person_and_the_old_number_is_free(
    world: World, phone: str
) -> None:
    new, old_id, new_id = unique_phone(), user_id(), user_id()
    await world.grant(phone)
    await world.post(message_from("STOP", phone=phone, bsuid=old_id))
    await world.until(phone, "opted_out")

    await world.post(changed_number(phone, new, old_id, new_id))
    moved = await world.until(new, "opted_out", new_id)
    assert set(moved["identifiers"]) == {new, new_id}
    old = await world.until(phone, "unknown")
    assert (old["version"], old["identifiers"]) == (0, [phone])
    assert reasons(await world.decide(new, new_id, phone)) == [
        ("dropped", "opted_out"),
        ("dropped", "opted_out"),
        ("dropped", "no_consent"),  # the number may be a stranger's now
    ]


async def test_a_grant_follows_a_number_change_and_a_stop_after_it_stops_the_new_number(
    world: World, phone: str
) -> None:
    new, old_id, new_id = unique_phone(), user_id(), user_id()
    await world.grant(phone)
    await world.post(message_from("Hi", phone=phone, bsuid=old_id))
    await world.until(phone, "opted_in", old_id)

    await world.post(changed_number(phone, new, old_id, new_id))
    await world.until(new, "opted_in", new_id)
    assert reasons(await world.decide(new, phone, old_id)) == [
        ("dispatched", "consented"),
        ("dropped", "no_consent"),
        ("dropped", "no_consent"),
    ]

    await world.post(message_from("stop", phone=new, bsuid=new_id))
    await world.until(new_id, "opted_out")
    assert reasons(await world.decide(new, new_id)) == [
        ("dropped", "opted_out"),
        ("dropped", "opted_out"),
    ]


async def test_a_stop_typed_in_a_group_is_the_senders_own(world: World, phone: str) -> None:
    await world.grant(phone)
    await world.post(
        message_from("STOP", phone=phone, bsuid=user_id(), group_id="120363025246125486")
    )
    await world.until(phone, "opted_out")
    assert reasons(await world.decide(phone)) == [("dropped", "opted_out")]
