"""An erasure request, from the consent API or the operator's command, is an event on
the log: from the moment it is folded nothing is sent to any of the person's
identifiers, their opt-out's confirmation included (docs/erasure.md section 5)."""

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from services.consent import erasure_request
from tests.support.records import unique_phone
from tests.support.whatsapp_world import World, message_from, reasons, user_id

pytestmark = pytest.mark.e2e


async def test_an_erasure_request_through_the_api_stops_every_send(world: World) -> None:
    phone = unique_phone()
    await world.grant(phone)
    assert reasons(await world.decide(phone)) == [("dispatched", "consented")]

    async with httpx.AsyncClient(base_url=world.consent) as http:  # loopback: the operator
        answer = await http.post(
            f"/v1/subjects/{phone}/erasure", json={"reason": "ticket DSR-7"}, timeout=10
        )
    assert answer.status_code == 202
    event_id = answer.json()["event_id"]

    state = await world.until_state(phone, lambda s: s["erasure_event_id"] == event_id)
    assert state["status"] == "opted_out"
    assert state["purposes"] == {}
    [decision] = await world.decide(phone)
    assert (decision["decision"], decision["reason"]) == ("dropped", "opted_out")
    assert decision["consent_event_id"] == event_id


async def test_an_erasure_request_by_command_covers_every_identifier_and_the_stop(
    world: World,
) -> None:
    """Asked by the person's user id, it binds their number too; their STOP after it
    gets no confirmation: they asked us to forget them, not to tell them so."""
    phone, bsuid = unique_phone(), user_id()
    await world.post(message_from("hello", phone=phone, bsuid=bsuid))  # links the two
    await world.grant(phone)
    await world.until(phone, "opted_in", bsuid)

    code = await asyncio.to_thread(
        erasure_request.main,
        [bsuid, "--requested-by", "privacy-desk", "--bootstrap", world.stack.kafka_bootstrap],
    )
    assert code == 0
    await world.until_state(phone, lambda s: s["erasure_event_id"] is not None)

    decided = await world.decide(phone, bsuid)
    assert reasons(decided) == [("dropped", "opted_out"), ("dropped", "opted_out")]

    def confirmations(_: object) -> list[dict[str, Any]]:
        return [
            v
            for v in map(orjson.loads, (r.value for r in world.decisions.records))
            if v["recipient"] in (phone, bsuid) and v["purpose"] == "opt_out_confirmation"
        ]

    await world.post(message_from("STOP", phone=phone, bsuid=bsuid))
    [confirmation] = confirmations(await world.decisions.wait_for(confirmations))
    assert (confirmation["decision"], confirmation["reason"]) == ("dropped", "opted_out")
