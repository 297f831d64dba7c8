"""What WhatsApp itself reports of a user (marketing preferences, failed statuses),
through the signed webhook and the real broker: it never lets more through."""

import pytest

from tests.support.whatsapp_world import World, failed, message_from, preference, reasons

pytestmark = pytest.mark.e2e

PROMOTIONAL = "educational_material"


async def test_a_preference_stop_takes_the_promotional_purpose_and_a_resume_gives_it_back(
    world: World, phone: str
) -> None:
    await world.grant(phone, "event_reminder", PROMOTIONAL)
    await world.post(preference(phone, "stop"))
    stopped = await world.until_state(phone, lambda s: s["stopped_by_platform"] == [PROMOTIONAL])
    assert stopped["status"] == "opted_in", "the reminders the person asked for still count"
    assert list(stopped["purposes"]) == ["event_reminder"]
    assert reasons(await world.decide(phone, purpose=PROMOTIONAL)) == [
        ("dropped", "purpose_not_consented")
    ]
    assert reasons(await world.decide(phone)) == [("dispatched", "consented")]

    await world.post(preference(phone, "resume"))
    resumed = await world.until_state(phone, lambda s: s["stopped_by_platform"] == [])
    assert PROMOTIONAL in resumed["purposes"]
    assert reasons(await world.decide(phone, purpose=PROMOTIONAL)) == [("dispatched", "consented")]


async def test_a_resume_never_lifts_a_stop_the_user_typed(world: World, phone: str) -> None:
    await world.grant(phone, "event_reminder", PROMOTIONAL)
    await world.post(preference(phone, "stop"))
    await world.until_state(phone, lambda s: s["stopped_by_platform"] == [PROMOTIONAL])
    await world.post(message_from("STOP", phone=phone, bsuid=None))
    await world.until(phone, "opted_out")
    await world.post(preference(phone, "resume"))
    resumed = await world.until_state(phone, lambda s: s["stopped_by_platform"] == [])
    assert resumed["status"] == "opted_out"
    assert reasons(await world.decide(phone, purpose=PROMOTIONAL)) == [("dropped", "opted_out")]
    # Only the person lifts their STOP; then both purposes count again.
    await world.post(message_from("START", phone=phone, bsuid=None))
    await world.until(phone, "opted_in")
    assert reasons(await world.decide(phone, purpose=PROMOTIONAL)) == [("dispatched", "consented")]


async def test_a_failed_status_131050_stops_the_promotional_purpose(
    world: World, phone: str
) -> None:
    await world.grant(phone, "event_reminder", PROMOTIONAL)
    await world.post(failed(phone, 131050))
    await world.until_state(phone, lambda s: s["stopped_by_platform"] == [PROMOTIONAL])
    assert reasons(await world.decide(phone, purpose=PROMOTIONAL)) == [
        ("dropped", "purpose_not_consented")
    ]


async def test_a_failed_status_131049_holds_the_persons_sends_for_a_day(
    world: World, phone: str
) -> None:
    await world.grant(phone)
    await world.post(failed(phone, 131049))
    held = await world.until_state(phone, lambda s: s["held_until"] is not None)
    [decision] = await world.decide(phone)
    assert (decision["decision"], decision["reason"]) == ("deferred", "platform_limit")
    assert decision["not_before"][:16] == held["held_until"][:16]


async def test_repeated_131026_makes_the_number_unreachable_until_the_person_writes(
    world: World, phone: str
) -> None:
    await world.grant(phone)
    for _ in range(2):
        await world.post(failed(phone, 131026))
    await world.until_state(phone, lambda s: s["failed_deliveries"] == 2)
    assert reasons(await world.decide(phone)) == [("dispatched", "consented")], "two may pass"
    await world.post(failed(phone, 131026))
    await world.until_state(phone, lambda s: s["failed_deliveries"] == 3)
    assert reasons(await world.decide(phone)) == [("dropped", "unreachable")]

    await world.post(message_from("thanks, got it", phone=phone, bsuid=None))
    await world.until_state(phone, lambda s: s["failed_deliveries"] == 0)
    assert reasons(await world.decide(phone)) == [("dispatched", "consented")]
