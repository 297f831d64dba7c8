"""Quiet hours on top of the consent rules (clause 6): given what the consent
rules allow and the recipient's local time, when the request is timed, then it
goes now, is deferred to the window's opening, or is dropped as too late; and
the gate's pure core records the deferral, or replaces it once released."""

from datetime import UTC, datetime, timedelta

from aiokafka import ConsumerRecord

from services.dispatcher.gate.decide import decide_batch, parse_batch
from services.dispatcher.gate.store import DecisionRow
from shared.contract.decisions import Decision, DispatchDecision, Reason
from shared.contract.event_parsing import parse_consent_event
from shared.contract.purposes import OPT_OUT_CONFIRMATION, Purpose
from shared.contract.requests import SendRequest, parse_send_request
from shared.dispatch.facts import DispatchFacts
from shared.dispatch.quiet_hours import QuietHoursPolicy
from shared.dispatch.rules import FrequencyPolicy, Verdict
from shared.dispatch.timing import ALWAYS_OPEN, decide_in_time
from shared.rejection import Rejected
from tests.unit.domain.builders import SUBJECT, fold, granted, opted_out, request

MOSCOW = "Europe/Moscow"
POLICY = QuietHoursPolicy.from_settings({"default": "09:00-20:00"})
# 03:00 in Moscow (UTC+3); the window opens at 09:00 there, 06:00 UTC.
NIGHT = datetime(2026, 12, 3, 0, 0, tzinfo=UTC)
OPENING = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
DAY = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
REMINDER = Purpose.EVENT_REMINDER
ALLOWED = Verdict(decision=Decision.DISPATCHED, reason=Reason.CONSENTED, consent_event_id="g1")


def timed(verdict: Verdict, send: SendRequest, now: datetime) -> Verdict:
    return decide_in_time(verdict, send, POLICY, now)


def test_a_reminder_at_night_is_deferred_to_the_opening_in_the_recipients_zone() -> None:
    result = timed(ALLOWED, request(REMINDER, timezone=MOSCOW), NIGHT)

    assert (result.decision, result.reason) == (Decision.DEFERRED, Reason.QUIET_HOURS)
    assert result.not_before == OPENING
    assert result.consent_event_id == "g1"
    assert result.detail is not None and MOSCOW in result.detail


def test_a_reminder_inside_the_window_goes_now() -> None:
    assert timed(ALLOWED, request(REMINDER, timezone=MOSCOW), DAY) == ALLOWED


def test_what_the_person_waits_for_is_never_deferred() -> None:
    for purpose in (
        Purpose.REGISTRATION_CONFIRMATION,
        Purpose.INQUIRY_RESPONSE,
        Purpose.CUSTOMER_SUPPORT,
    ):
        assert timed(ALLOWED, request(purpose, timezone=MOSCOW), NIGHT) == ALLOWED
    confirmation = Verdict(decision=Decision.DISPATCHED, reason=Reason.OPT_OUT_CONFIRMATION)
    send = request(OPT_OUT_CONFIRMATION, opt_out_event_id="o1", timezone=MOSCOW)
    assert timed(confirmation, send, NIGHT) == confirmation


def test_a_request_the_consent_rules_drop_is_dropped_at_once_not_deferred() -> None:
    no = Verdict(decision=Decision.DROPPED, reason=Reason.OPTED_OUT, consent_event_id="o1")

    assert timed(no, request(REMINDER, timezone=MOSCOW), NIGHT) == no


def test_a_request_held_back_by_the_cap_at_night_waits_for_the_cap_to_count_anew() -> None:
    capped = Verdict(decision=Decision.DROPPED, reason=Reason.FREQUENCY_CAPPED)

    result = timed(capped, request(REMINDER, timezone=MOSCOW), NIGHT)

    assert (result.decision, result.not_before) == (Decision.DEFERRED, OPENING)
    assert timed(capped, request(REMINDER, timezone=MOSCOW), DAY) == capped


def test_a_reminder_that_could_only_go_after_deliver_by_is_dropped_never_late() -> None:
    send = request(REMINDER, timezone=MOSCOW, deliver_by=OPENING - timedelta(minutes=1))

    result = timed(ALLOWED, send, NIGHT)

    assert (result.decision, result.reason) == (Decision.DROPPED, Reason.DELIVER_BY_PASSED)
    assert result.not_before is None


def test_a_reminder_due_exactly_at_deliver_by_is_deferred() -> None:
    result = timed(ALLOWED, request(REMINDER, timezone=MOSCOW, deliver_by=OPENING), NIGHT)

    assert result.decision is Decision.DEFERRED


def test_without_quiet_hours_nothing_is_deferred() -> None:
    assert decide_in_time(ALLOWED, request(REMINDER, timezone=MOSCOW), ALWAYS_OPEN, NIGHT) == (
        ALLOWED
    )


def test_without_a_timezone_the_numbers_zones_are_intersected() -> None:
    # +7 916 is a Russian mobile: phonenumbers gives it every Russian zone, so the
    # window is where 09:00-20:00 holds from Kaliningrad to Kamchatka.
    result = timed(ALLOWED, request(REMINDER, recipient=SUBJECT), NIGHT)

    assert result.decision is Decision.DEFERRED
    assert result.not_before is not None and result.not_before > NIGHT


def test_an_unknown_timezone_is_refused_at_parse_time() -> None:
    raw = request(REMINDER).model_dump_json().replace('"timezone":null', '"timezone":"Mars/Base"')

    rejected = parse_send_request(raw.encode())

    assert not isinstance(rejected, SendRequest)
    assert rejected.reason == "invalid_timezone"


# ---------------------------------------------------------------- the gate's core


def _record(send: SendRequest, topic: str, offset: int) -> ConsumerRecord:
    raw = send.model_dump_json().encode()
    return ConsumerRecord(topic, 0, offset, 0, 0, SUBJECT.encode(), raw, None, 0, 0, [])


def _decide(
    batch: list[ConsumerRecord], now: datetime, deferred: dict[str, datetime] | None = None
) -> dict[str, DecisionRow]:
    frequency = FrequencyPolicy()
    states = {SUBJECT: fold(granted(REMINDER, event_id="g1", occurred_at=NIGHT - timedelta(1)))}
    facts = DispatchFacts(frequency.window)
    return decide_batch(parse_batch(batch), states, facts, now, frequency, {}, POLICY, deferred)


def test_the_gate_records_a_deferral_with_the_request_to_decide_again() -> None:
    send = request(REMINDER, request_id="r1", timezone=MOSCOW)

    row = _decide([_record(send, "messages.requests.v1", 5)], NIGHT)["r1"]

    assert (row.decision, row.reason, row.not_before) == (
        Decision.DEFERRED,
        Reason.QUIET_HOURS,
        OPENING,
    )
    assert row.request_json == send.model_dump_json().encode()
    assert row.outbound_json is None
    published = DispatchDecision.model_validate_json(row.decision_json)
    assert published.not_before == OPENING


def test_a_released_request_is_decided_again_and_replaces_its_deferral() -> None:
    send = request(REMINDER, request_id="r1", timezone=MOSCOW)
    release = _record(send, "messages.deferred.v1", 0)

    row = _decide([release], DAY, deferred={"r1": NIGHT})["r1"]

    assert (row.decision, row.reason) == (
        Decision.DISPATCHED,
        Reason.CONSENTED,
    )
    assert row.replaces == NIGHT
    assert row.source_topic == "messages.deferred.v1"
    assert row.request_json is None


def test_an_opt_out_during_the_night_wins_at_the_release() -> None:
    send = request(REMINDER, request_id="r1", timezone=MOSCOW)
    frequency = FrequencyPolicy()
    states = {
        SUBJECT: fold(
            granted(REMINDER, event_id="g1", occurred_at=NIGHT - timedelta(1)),
            opted_out(event_id="o1", occurred_at=NIGHT + timedelta(hours=1)),
        )
    }
    rows = decide_batch(
        parse_batch([_record(send, "messages.deferred.v1", 0)]),
        states,
        DispatchFacts(frequency.window),
        DAY,
        frequency,
        {},
        POLICY,
        {"r1": NIGHT},
    )

    assert (rows["r1"].decision, rows["r1"].reason) == (Decision.DROPPED, Reason.OPTED_OUT)


# ---------------------------------------------------------------- the consent's zone


def test_the_latest_grant_naming_a_zone_gives_the_subjects_zone() -> None:
    state = fold(
        granted(REMINDER, event_id="g1", occurred_at=NIGHT - timedelta(2), timezone="Asia/Tokyo"),
        granted(REMINDER, event_id="g2", occurred_at=NIGHT - timedelta(1), timezone=MOSCOW),
        granted(Purpose.EDUCATIONAL_MATERIAL, event_id="g3", occurred_at=NIGHT),
    )

    assert state.timezone == MOSCOW


def test_the_consents_zone_serves_a_request_that_names_none() -> None:
    # 03:00 in Moscow, but 09:00 in Tokyo (UTC+9): the zone decides.
    send = request(REMINDER)

    assert decide_in_time(ALLOWED, send, POLICY, NIGHT, known_timezone=MOSCOW).not_before == (
        OPENING
    )
    assert decide_in_time(ALLOWED, send, POLICY, NIGHT, known_timezone="Asia/Tokyo") == ALLOWED


def test_the_requests_own_zone_wins_over_the_consents() -> None:
    send = request(REMINDER, timezone="Asia/Tokyo")

    assert decide_in_time(ALLOWED, send, POLICY, NIGHT, known_timezone=MOSCOW) == ALLOWED


def test_a_grant_with_an_unknown_zone_is_refused() -> None:
    raw = granted(REMINDER).model_dump_json().replace('"timezone":null', '"timezone":"Nowhere"')

    rejected = parse_consent_event(raw.encode())

    assert isinstance(rejected, Rejected)
    assert rejected.reason == "invalid_timezone"
