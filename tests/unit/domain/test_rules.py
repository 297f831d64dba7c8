"""decide_send: given the subject's events, when this request, then this verdict.

One test (or table) per reason of CONTRACT.md section 4."""

from dataclasses import replace
from datetime import timedelta

import pytest

from shared.consent.fold import fold_subject
from shared.contract.decisions import DISPATCHING_REASONS, Decision, Reason
from shared.contract.events import ConsentEvent
from shared.contract.purposes import OPT_OUT_CONFIRMATION, Purpose
from shared.dispatch.rules import FrequencyPolicy, Verdict
from tests.unit.domain.builders import (
    EVERY_PURPOSE,
    SUBJECT,
    arrived,
    at,
    decide,
    erasure_request,
    fold,
    granted,
    opted_in,
    opted_out,
    request,
    revoked,
)

REMINDER = Purpose.EVENT_REMINDER
SUPPORT = Purpose.CUSTOMER_SUPPORT


def dispatched(verdict: Verdict, reason: Reason) -> bool:
    return verdict.decision is Decision.DISPATCHED and verdict.reason is reason


def dropped(verdict: Verdict, reason: Reason) -> bool:
    return verdict.decision is Decision.DROPPED and verdict.reason is reason


# ---------------------------------------------------------------- consented


def test_granted_purpose_is_dispatched_naming_the_grant() -> None:
    state = fold(granted(REMINDER, SUPPORT, event_id="g1", occurred_at=at(0)))

    verdict = decide(state, request(REMINDER), now=at(1))

    assert dispatched(verdict, Reason.CONSENTED)
    assert verdict.consent_event_id == "g1"


@pytest.mark.parametrize("purpose", EVERY_PURPOSE)
def test_every_clause_3_2_purpose_can_be_dispatched_when_granted(purpose: Purpose) -> None:
    state = fold(granted(purpose, event_id="g1"))

    assert dispatched(decide(state, request(purpose), now=at(1)), Reason.CONSENTED)


def test_purpose_restored_by_opt_in_is_dispatched_naming_the_original_grant() -> None:
    state = fold(
        granted(REMINDER, event_id="g1", occurred_at=at(0)),
        opted_out(occurred_at=at(1)),
        opted_in(occurred_at=at(2)),
    )

    verdict = decide(state, request(REMINDER), now=at(3))

    assert dispatched(verdict, Reason.CONSENTED)
    assert verdict.consent_event_id == "g1"


def test_grant_after_opt_out_is_dispatched_for_its_purpose() -> None:
    state = fold(
        granted(REMINDER, occurred_at=at(0)),
        opted_out(occurred_at=at(1)),
        granted(SUPPORT, event_id="g2", occurred_at=at(2)),
    )

    verdict = decide(state, request(SUPPORT), now=at(3))

    assert dispatched(verdict, Reason.CONSENTED)
    assert verdict.consent_event_id == "g2"


def test_grant_still_valid_just_before_its_expiry_is_dispatched() -> None:
    state = fold(granted(REMINDER, event_id="g1", expires_at=at(60)))

    assert dispatched(
        decide(state, request(REMINDER), now=at(60) - timedelta(microseconds=1)),
        Reason.CONSENTED,
    )


# ---------------------------------------------------------------- opt_out_confirmation


def test_confirmation_of_the_current_opt_out_is_dispatched_once() -> None:
    state = fold(
        granted(REMINDER, occurred_at=at(0)), opted_out(event_id="stop", occurred_at=at(1))
    )

    verdict = decide(state, request(OPT_OUT_CONFIRMATION, opt_out_event_id="stop"), now=at(2))

    assert dispatched(verdict, Reason.OPT_OUT_CONFIRMATION)
    assert verdict.consent_event_id == "stop"


def test_confirmation_is_dispatched_to_a_subject_who_only_ever_opted_out() -> None:
    state = fold(opted_out(event_id="stop"))

    verdict = decide(state, request(OPT_OUT_CONFIRMATION, opt_out_event_id="stop"))

    assert dispatched(verdict, Reason.OPT_OUT_CONFIRMATION)


def test_confirmation_of_the_second_opt_out_is_its_own_notification() -> None:
    state = fold(opted_out(event_id="stop-1"), opted_out(event_id="stop-2", occurred_at=at(1)))

    verdict = decide(state, request(OPT_OUT_CONFIRMATION, opt_out_event_id="stop-2"))

    assert dispatched(verdict, Reason.OPT_OUT_CONFIRMATION)


def test_an_opt_out_taken_unsigned_stops_everything_but_gets_no_confirmation() -> None:
    # A forged STOP may stop messages, never make the gate send a text of the
    # forger's choosing: the confirmation is the person's, for their own STOP.
    grant, stop = arrived(
        granted(REMINDER, occurred_at=at(0)), opted_out(event_id="stop", occurred_at=at(1))
    )
    state = fold_subject(SUBJECT, [grant, replace(stop, authenticated=False)])

    confirmation = decide(state, request(OPT_OUT_CONFIRMATION, opt_out_event_id="stop"), now=at(2))
    reminder = decide(state, request(REMINDER), now=at(2))

    assert dropped(confirmation, Reason.CONFIRMATION_NOT_ALLOWED)
    assert "only the person's own STOP gets a confirmation" in (confirmation.detail or "")
    assert dropped(reminder, Reason.OPTED_OUT)


def test_a_signed_opt_out_after_an_unsigned_one_gets_its_confirmation() -> None:
    first, second = arrived(
        opted_out(event_id="forged", occurred_at=at(1)),
        opted_out(event_id="own", occurred_at=at(2)),
    )
    state = fold_subject(SUBJECT, [replace(first, authenticated=False), second])

    verdict = decide(state, request(OPT_OUT_CONFIRMATION, opt_out_event_id="own"), now=at(3))

    assert dispatched(verdict, Reason.OPT_OUT_CONFIRMATION)


# ---------------------------------------------------------------- erasure requested


def test_after_an_erasure_request_nothing_is_sent_confirmations_included() -> None:
    state = fold(
        granted(REMINDER, SUPPORT, occurred_at=at(0)),
        opted_out(event_id="stop", occurred_at=at(1)),
        erasure_request(event_id="erase", occurred_at=at(2)),
        granted(REMINDER, occurred_at=at(3)),  # a stale system's grant, after the request
    )

    verdicts = [
        decide(state, request(REMINDER), now=at(4)),
        decide(state, request(OPT_OUT_CONFIRMATION, opt_out_event_id="stop"), now=at(4)),
    ]

    for verdict in verdicts:
        assert dropped(verdict, Reason.OPTED_OUT)
        assert verdict.consent_event_id == "erase"
        assert "erased" in (verdict.detail or "")


def test_an_erasure_request_ends_what_a_later_start_could_restore() -> None:
    state = fold(
        granted(REMINDER, occurred_at=at(0)),
        opted_out(occurred_at=at(1)),
        erasure_request(occurred_at=at(2)),
        opted_in(occurred_at=at(3)),
    )

    assert state.grants == {} and state.suspended == {}


# ---------------------------------------------------------------- no_consent


def test_unknown_recipient_gets_no_cold_outreach() -> None:
    verdict = decide(None, request(REMINDER))

    assert dropped(verdict, Reason.NO_CONSENT)
    assert verdict.consent_event_id is None


def test_recipient_with_an_empty_history_gets_no_cold_outreach() -> None:
    assert dropped(decide(fold_subject(SUBJECT, []), request(REMINDER)), Reason.NO_CONSENT)


# ---------------------------------------------------------------- opted_out


@pytest.mark.parametrize("purpose", EVERY_PURPOSE)
def test_opted_out_recipient_gets_nothing_for_any_purpose(purpose: Purpose) -> None:
    state = fold(
        granted(*EVERY_PURPOSE, occurred_at=at(0)), opted_out(event_id="stop", occurred_at=at(1))
    )

    verdict = decide(state, request(purpose), now=at(2))

    assert dropped(verdict, Reason.OPTED_OUT)
    assert verdict.consent_event_id == "stop"


def test_opted_out_recipient_stays_opted_out_despite_a_late_older_grant() -> None:
    state = fold(
        opted_out(event_id="stop", occurred_at=at(10)), granted(REMINDER, occurred_at=at(5))
    )

    assert dropped(decide(state, request(REMINDER), now=at(11)), Reason.OPTED_OUT)


def test_opted_out_recipient_stays_opted_out_despite_a_late_older_opt_in() -> None:
    state = fold(
        granted(REMINDER, occurred_at=at(0)),
        opted_out(occurred_at=at(10)),
        opted_in(occurred_at=at(5)),
    )

    assert dropped(decide(state, request(REMINDER), now=at(11)), Reason.OPTED_OUT)


# ---------------------------------------------------------------- purpose_not_consented


def test_purpose_never_granted_is_not_consented() -> None:
    state = fold(granted(REMINDER))

    verdict = decide(state, request(SUPPORT), now=at(1))

    assert dropped(verdict, Reason.PURPOSE_NOT_CONSENTED)
    assert verdict.consent_event_id is None


def test_revoked_purpose_is_not_consented_naming_the_revocation() -> None:
    state = fold(
        granted(REMINDER, SUPPORT, occurred_at=at(0)),
        revoked(REMINDER, event_id="r1", occurred_at=at(1)),
    )

    verdict = decide(state, request(REMINDER), now=at(2))

    assert dropped(verdict, Reason.PURPOSE_NOT_CONSENTED)
    assert verdict.consent_event_id == "r1"


def test_purpose_revoked_by_a_revocation_of_all_is_not_consented() -> None:
    state = fold(granted(REMINDER, occurred_at=at(0)), revoked(event_id="r-all", occurred_at=at(1)))

    verdict = decide(state, request(REMINDER), now=at(2))

    assert dropped(verdict, Reason.PURPOSE_NOT_CONSENTED)
    assert verdict.consent_event_id == "r-all"


def test_purpose_not_restored_by_the_opt_in_is_not_consented() -> None:
    state = fold(
        granted(REMINDER, occurred_at=at(0)),
        opted_out(occurred_at=at(1)),
        granted(SUPPORT, occurred_at=at(2)),
    )

    assert dropped(decide(state, request(REMINDER), now=at(3)), Reason.PURPOSE_NOT_CONSENTED)


def test_opt_in_with_no_earlier_grant_does_not_consent_to_anything() -> None:
    state = fold(opted_in())

    assert dropped(decide(state, request(REMINDER), now=at(1)), Reason.PURPOSE_NOT_CONSENTED)


# ---------------------------------------------------------------- consent_expired


def test_grant_expired_before_now_is_dropped_naming_the_grant() -> None:
    state = fold(granted(REMINDER, event_id="g1", occurred_at=at(0), expires_at=at(60)))

    verdict = decide(state, request(REMINDER), now=at(61))

    assert dropped(verdict, Reason.CONSENT_EXPIRED)
    assert verdict.consent_event_id == "g1"


def test_grant_no_longer_counts_from_its_expiry_instant() -> None:
    state = fold(granted(REMINDER, expires_at=at(60)))

    assert dropped(decide(state, request(REMINDER), now=at(60)), Reason.CONSENT_EXPIRED)


def test_expiry_is_judged_at_decision_time_not_at_request_time() -> None:
    state = fold(granted(REMINDER, expires_at=at(60)))
    send = request(REMINDER, requested_at=at(30))

    assert dropped(decide(state, send, now=at(90)), Reason.CONSENT_EXPIRED)


def test_restored_grant_that_expired_after_the_opt_in_is_dropped_as_expired() -> None:
    state = fold(
        granted(REMINDER, event_id="g1", occurred_at=at(0), expires_at=at(60)),
        opted_out(occurred_at=at(10)),
        opted_in(occurred_at=at(20)),
    )

    assert dispatched(decide(state, request(REMINDER), now=at(30)), Reason.CONSENTED)
    assert dropped(decide(state, request(REMINDER), now=at(61)), Reason.CONSENT_EXPIRED)


# ---------------------------------------------------------------- purpose_not_permitted


@pytest.mark.parametrize("purpose", ["marketing", "promotions", "newsletter", "EVENT_REMINDER"])
def test_purpose_outside_clause_3_2_is_not_permitted_even_with_every_grant(purpose: str) -> None:
    state = fold(granted(*EVERY_PURPOSE))

    verdict = decide(state, request(purpose), now=at(1))

    assert dropped(verdict, Reason.PURPOSE_NOT_PERMITTED)


@pytest.mark.parametrize("purpose", ["marketing", "promotions", "unknown"])
def test_purpose_outside_clause_3_2_to_an_unknown_recipient_is_not_permitted(purpose: str) -> None:
    assert dropped(decide(None, request(purpose)), Reason.PURPOSE_NOT_PERMITTED)


def test_purpose_outside_clause_3_2_to_an_opted_out_recipient_is_not_permitted() -> None:
    state = fold(opted_out(event_id="stop"))

    assert dropped(decide(state, request("marketing")), Reason.PURPOSE_NOT_PERMITTED)


# ---------------------------------------------------------------- confirmation_not_allowed


def test_confirmation_without_an_opt_out_event_id_is_not_allowed() -> None:
    state = fold(opted_out(event_id="stop"))

    verdict = decide(state, request(OPT_OUT_CONFIRMATION, opt_out_event_id=None))

    assert dropped(verdict, Reason.CONFIRMATION_NOT_ALLOWED)


def test_confirmation_to_a_subject_who_is_not_opted_out_is_not_allowed() -> None:
    state = fold(granted(REMINDER))

    verdict = decide(state, request(OPT_OUT_CONFIRMATION, opt_out_event_id="stop"), now=at(1))

    assert dropped(verdict, Reason.CONFIRMATION_NOT_ALLOWED)


def test_confirmation_to_an_unknown_recipient_is_not_allowed() -> None:
    verdict = decide(None, request(OPT_OUT_CONFIRMATION, opt_out_event_id="stop"))

    assert dropped(verdict, Reason.CONFIRMATION_NOT_ALLOWED)


def test_confirmation_after_the_subject_opted_back_in_is_not_allowed() -> None:
    state = fold(
        granted(REMINDER, occurred_at=at(0)),
        opted_out(event_id="stop", occurred_at=at(1)),
        opted_in(occurred_at=at(2)),
    )

    verdict = decide(state, request(OPT_OUT_CONFIRMATION, opt_out_event_id="stop"), now=at(3))

    assert dropped(verdict, Reason.CONFIRMATION_NOT_ALLOWED)


def test_confirmation_for_a_different_opt_out_is_not_allowed() -> None:
    state = fold(opted_out(event_id="stop"))

    verdict = decide(state, request(OPT_OUT_CONFIRMATION, opt_out_event_id="someone-else"))

    assert dropped(verdict, Reason.CONFIRMATION_NOT_ALLOWED)
    assert verdict.consent_event_id == "stop"


def test_confirmation_for_an_older_opt_out_is_not_allowed() -> None:
    state = fold(
        opted_out(event_id="stop-1", occurred_at=at(0)),
        opted_out(event_id="stop-2", occurred_at=at(1)),
    )

    verdict = decide(state, request(OPT_OUT_CONFIRMATION, opt_out_event_id="stop-1"), now=at(2))

    assert dropped(verdict, Reason.CONFIRMATION_NOT_ALLOWED)


def test_second_confirmation_for_the_same_opt_out_is_not_allowed() -> None:
    state = fold(opted_out(event_id="stop"))

    verdict = decide(
        state,
        request(OPT_OUT_CONFIRMATION, opt_out_event_id="stop"),
        confirmation_already_sent=True,
    )

    assert dropped(verdict, Reason.CONFIRMATION_NOT_ALLOWED)
    assert verdict.consent_event_id == "stop"


# ---------------------------------------------------------------- frequency_capped


def test_default_frequency_limit_is_documented_as_20_per_24_hours() -> None:
    assert FrequencyPolicy() == FrequencyPolicy(limit=20, window=timedelta(hours=24))


def test_request_at_the_limit_is_capped_naming_the_grant() -> None:
    state = fold(granted(REMINDER, event_id="g1"))
    policy = FrequencyPolicy(limit=3)

    verdict = decide(state, request(REMINDER), now=at(1), dispatched_in_window=3, frequency=policy)

    assert dropped(verdict, Reason.FREQUENCY_CAPPED)
    assert verdict.consent_event_id == "g1"


def test_request_just_under_the_limit_is_dispatched() -> None:
    state = fold(granted(REMINDER))

    verdict = decide(
        state,
        request(REMINDER),
        now=at(1),
        dispatched_in_window=2,
        frequency=FrequencyPolicy(limit=3),
    )

    assert dispatched(verdict, Reason.CONSENTED)


def test_confirmation_is_never_frequency_capped() -> None:
    state = fold(opted_out(event_id="stop"))

    verdict = decide(
        state,
        request(OPT_OUT_CONFIRMATION, opt_out_event_id="stop"),
        dispatched_in_window=1_000,
        frequency=FrequencyPolicy(limit=1),
    )

    assert dispatched(verdict, Reason.OPT_OUT_CONFIRMATION)


@pytest.mark.parametrize(
    ("state_events", "reason"),
    [
        ([opted_out(event_id="stop")], Reason.OPTED_OUT),
        ([granted(SUPPORT)], Reason.PURPOSE_NOT_CONSENTED),
        ([granted(REMINDER, expires_at=at(-1))], Reason.CONSENT_EXPIRED),
    ],
    ids=["opted-out", "not-consented", "expired"],
)
def test_consent_is_judged_before_the_frequency_cap(
    state_events: list[ConsentEvent], reason: Reason
) -> None:
    state = fold(*state_events)

    verdict = decide(
        state, request(REMINDER), dispatched_in_window=99, frequency=FrequencyPolicy(limit=1)
    )

    assert dropped(verdict, reason)


# ---------------------------------------------------------------- the verdict itself


def test_dispatch_happens_only_for_the_two_dispatching_reasons() -> None:
    assert {Reason.CONSENTED, Reason.OPT_OUT_CONFIRMATION} == DISPATCHING_REASONS


def test_every_dropped_verdict_says_why() -> None:
    state = fold(granted(REMINDER))

    verdict = decide(state, request(SUPPORT), now=at(1))

    assert verdict.decision is Decision.DROPPED
    assert verdict.detail
