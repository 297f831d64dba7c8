"""People known by phone number, by WhatsApp user id (BSUID) or both, through the
signed webhook and the real broker, with webhook bodies shaped as Meta sends them
in 2026 (user ids since March, usernames without numbers, system messages)."""

from pathlib import Path
from typing import Any

import orjson
import pytest

from services.audit.cli import AuditOptions, run_audit
from tests.support.eventually import eventually
from tests.support.records import unique_phone
from tests.support.signing import TRUST
from tests.support.whatsapp_world import (
    World,
    changed_number,
    delivered,
    message_from,
    reasons,
    user_id,
)

pytestmark = pytest.mark.e2e


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


async def test_an_audit_of_one_identifier_reads_the_whole_persons_history(
    world: World, phone: str, tmp_path: Path
) -> None:
    bsuid = user_id()
    await world.grant(phone)
    await world.post(message_from("Hello", phone=phone, bsuid=bsuid))
    await world.until(bsuid, "opted_in", phone)
    await world.post(message_from("STOP", phone=None, bsuid=bsuid))
    await world.until(phone, "opted_out")
    decided = await world.decide(bsuid, phone)

    run = await run_audit(
        AuditOptions(
            bootstrap=world.stack.kafka_bootstrap,
            trust=TRUST,
            out=tmp_path,
            subjects=frozenset({bsuid}),
            progress=False,
        )
    )
    ids = {d.decision.request_id for d in run.replayed.history.decisions}
    assert {d["request_id"] for d in decided} <= ids, "the phone's decisions are the person's"
    assert run.report.recomputed.agreeing == run.report.recomputed.decisions > 0
    assert [f for f in run.report.findings if f.severity == "violation"] == []
