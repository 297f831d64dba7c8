"""fold_subject / evolve: given these events (in this arrival order), then this state.

Contract section 2: the state is the fold of the subject's events ordered by
occurred_at, ties by Kafka timestamp, then partition and offset."""

from datetime import timedelta, timezone

import pytest

from shared.consent.fold import evolve, fold_subject
from shared.consent.state import Grant, Status, SubjectState
from shared.contract.events import ConsentEvent
from shared.contract.purposes import Purpose
from tests.unit.domain.builders import (
    EVERY_PURPOSE,
    SUBJECT,
    T0,
    arrived,
    at,
    fold,
    granted,
    logged,
    opted_in,
    opted_out,
    revoked,
)

REMINDER = Purpose.EVENT_REMINDER
CONFIRMATION = Purpose.REGISTRATION_CONFIRMATION
SUPPORT = Purpose.CUSTOMER_SUPPORT
MOSCOW = timezone(timedelta(hours=3))


# ---------------------------------------------------------------- no history


def test_no_history_is_an_unknown_subject_with_nothing_granted() -> None:
    state = fold_subject(SUBJECT, [])

    assert state == SubjectState(subject=SUBJECT)
    assert state.status is Status.UNKNOWN
    assert not state.has_history
    assert state.version == 0
    assert state.last_event_id is None


# ---------------------------------------------------------------- ConsentGranted


def test_grant_records_each_purpose_with_source_time_expiry_and_event_id() -> None:
    state = fold(
        granted(
            REMINDER,
            CONFIRMATION,
            event_id="g1",
            occurred_at=at(5),
            expires_at=at(days=30),
            source="website_form",
        )
    )

    expected = Grant(source="website_form", granted_at=at(5), expires_at=at(days=30), event_id="g1")
    assert state.grants == {REMINDER: expected, CONFIRMATION: expected}
    assert state.status is Status.OPTED_IN
    assert not state.opted_out


def test_later_grant_of_the_same_purpose_replaces_the_earlier_one() -> None:
    state = fold(
        granted(REMINDER, event_id="g1", occurred_at=at(0), expires_at=at(10)),
        granted(REMINDER, event_id="g2", occurred_at=at(5), source="explicit_confirmation"),
    )

    assert state.grants[REMINDER].event_id == "g2"
    assert state.grants[REMINDER].expires_at is None
    assert state.grants[REMINDER].source == "explicit_confirmation"


def test_grants_for_different_purposes_accumulate() -> None:
    state = fold(
        granted(REMINDER, event_id="g1", occurred_at=at(0)),
        granted(SUPPORT, event_id="g2", occurred_at=at(1)),
    )

    assert {p: g.event_id for p, g in state.grants.items()} == {REMINDER: "g1", SUPPORT: "g2"}


def test_grant_after_a_revocation_grants_again() -> None:
    state = fold(
        granted(REMINDER, occurred_at=at(0)),
        revoked(REMINDER, occurred_at=at(1)),
        granted(REMINDER, event_id="g2", occurred_at=at(2)),
    )

    assert state.grants[REMINDER].event_id == "g2"
    assert REMINDER not in state.revoked


# ---------------------------------------------------------------- ConsentRevoked


def test_revocation_of_some_purposes_keeps_the_others() -> None:
    state = fold(
        granted(REMINDER, CONFIRMATION, event_id="g1", occurred_at=at(0)),
        revoked(REMINDER, event_id="r1", occurred_at=at(1)),
    )

    assert set(state.grants) == {CONFIRMATION}
    assert state.revoked[REMINDER].event_id == "r1"
    assert state.revoked[REMINDER].revoked_at == at(1)
    assert state.revoked[REMINDER].grant.event_id == "g1"
    assert state.status is Status.OPTED_IN


def test_revocation_without_purposes_revokes_all() -> None:
    state = fold(
        granted(REMINDER, CONFIRMATION, occurred_at=at(0)),
        granted(SUPPORT, occurred_at=at(1)),
        revoked(event_id="r-all", occurred_at=at(2)),
    )

    assert state.grants == {}
    assert set(state.revoked) == {REMINDER, CONFIRMATION, SUPPORT}
    assert state.status is Status.UNKNOWN
    assert not state.opted_out


def test_revocation_of_a_purpose_never_granted_records_nothing() -> None:
    state = fold(granted(REMINDER, occurred_at=at(0)), revoked(SUPPORT, occurred_at=at(1)))

    assert set(state.grants) == {REMINDER}
    assert state.revoked == {}


def test_late_older_revocation_does_not_undo_a_newer_grant() -> None:
    state = fold(
        granted(REMINDER, event_id="g-new", occurred_at=at(10)),
        revoked(REMINDER, occurred_at=at(5)),
    )

    assert state.grants[REMINDER].event_id == "g-new"


# ---------------------------------------------------------------- OptedOut


def test_opt_out_revokes_every_purpose() -> None:
    state = fold(
        granted(REMINDER, CONFIRMATION, occurred_at=at(0)),
        granted(SUPPORT, occurred_at=at(1)),
        opted_out(event_id="stop-1", occurred_at=at(2)),
    )

    assert state.grants == {}
    assert state.opted_out
    assert state.opt_out_event_id == "stop-1"
    assert state.opted_out_at == at(2)
    assert state.status is Status.OPTED_OUT


def test_opt_out_without_any_grant_still_opts_out() -> None:
    state = fold(opted_out(event_id="stop-1"))

    assert state.status is Status.OPTED_OUT
    assert state.has_history


def test_second_opt_out_is_the_current_one() -> None:
    state = fold(
        granted(REMINDER, occurred_at=at(0)),
        opted_out(event_id="stop-1", occurred_at=at(1)),
        opted_out(event_id="stop-2", occurred_at=at(2)),
    )

    assert state.opt_out_event_id == "stop-2"
    assert state.opted_out_at == at(2)


# ---------------------------------------------------------------- OptedIn


def test_opt_in_restores_what_the_opt_out_revoked() -> None:
    state = fold(
        granted(REMINDER, CONFIRMATION, event_id="g1", occurred_at=at(0)),
        opted_out(occurred_at=at(1)),
        opted_in(occurred_at=at(2)),
    )

    assert {p: g.event_id for p, g in state.grants.items()} == {
        REMINDER: "g1",
        CONFIRMATION: "g1",
    }
    assert not state.opted_out
    assert state.status is Status.OPTED_IN


def test_opt_in_does_not_restore_a_grant_expired_at_the_opt_in() -> None:
    state = fold(
        granted(REMINDER, occurred_at=at(0), expires_at=at(30)),
        granted(SUPPORT, event_id="g-support", occurred_at=at(0)),
        opted_out(occurred_at=at(10)),
        opted_in(occurred_at=at(30)),
    )

    assert set(state.grants) == {SUPPORT}


def test_opt_in_judges_expiry_at_its_own_occurred_at_not_later() -> None:
    state = fold(
        granted(REMINDER, event_id="g1", occurred_at=at(0), expires_at=at(30)),
        opted_out(occurred_at=at(10)),
        opted_in(occurred_at=at(29)),
    )

    assert state.grants[REMINDER].event_id == "g1"
    assert state.grants[REMINDER].expires_at == at(30)


def test_opt_in_does_not_restore_a_purpose_revoked_before_the_opt_out() -> None:
    state = fold(
        granted(REMINDER, CONFIRMATION, occurred_at=at(0)),
        revoked(REMINDER, occurred_at=at(1)),
        opted_out(occurred_at=at(2)),
        opted_in(occurred_at=at(3)),
    )

    assert set(state.grants) == {CONFIRMATION}


def test_opt_in_does_not_restore_a_purpose_revoked_while_opted_out() -> None:
    state = fold(
        granted(REMINDER, CONFIRMATION, occurred_at=at(0)),
        opted_out(occurred_at=at(1)),
        revoked(REMINDER, event_id="r1", occurred_at=at(2)),
        opted_in(occurred_at=at(3)),
    )

    assert set(state.grants) == {CONFIRMATION}
    assert state.revoked[REMINDER].event_id == "r1"


def test_opt_in_after_a_double_opt_out_restores_the_grants_of_before_the_first() -> None:
    state = fold(
        granted(REMINDER, event_id="g1", occurred_at=at(0)),
        opted_out(occurred_at=at(1)),
        opted_out(occurred_at=at(2)),
        opted_in(occurred_at=at(3)),
    )

    assert state.grants[REMINDER].event_id == "g1"


def test_opt_in_restores_only_once_a_later_opt_out_revokes_again() -> None:
    state = fold(
        granted(REMINDER, occurred_at=at(0)),
        opted_out(occurred_at=at(1)),
        opted_in(occurred_at=at(2)),
        opted_out(event_id="stop-2", occurred_at=at(3)),
    )

    assert state.grants == {}
    assert state.opt_out_event_id == "stop-2"


def test_opt_in_without_an_opt_out_grants_nothing() -> None:
    state = fold(opted_in(occurred_at=at(0)))

    assert state.grants == {}
    assert state.status is Status.UNKNOWN
    assert state.has_history


# ---------------------------------------------------------------- late arrivals


def test_late_older_opt_in_does_not_undo_opt_out() -> None:
    state = fold(
        granted(REMINDER, occurred_at=at(0)),
        opted_out(event_id="stop", occurred_at=at(10)),
        opted_in(occurred_at=at(5)),  # arrives last, happened before the STOP
    )

    assert state.opted_out
    assert state.grants == {}
    assert state.opt_out_event_id == "stop"


def test_late_older_grant_does_not_undo_opt_out() -> None:
    state = fold(
        opted_out(event_id="stop", occurred_at=at(10)),
        granted(REMINDER, occurred_at=at(5)),  # arrives last, happened before the STOP
    )

    assert state.opted_out
    assert state.grants == {}


def test_late_older_grant_is_suspended_and_a_newer_opt_in_restores_it() -> None:
    state = fold(
        opted_out(occurred_at=at(10)),
        opted_in(occurred_at=at(20)),
        granted(REMINDER, event_id="g-late", occurred_at=at(5)),
    )

    assert state.grants[REMINDER].event_id == "g-late"
    assert not state.opted_out


def test_newer_opt_in_after_opt_out_counts_even_from_another_partition() -> None:
    grant = granted(REMINDER, event_id="g1", occurred_at=at(0))
    stop = opted_out(occurred_at=at(10))
    start = opted_in(occurred_at=at(20))

    state = fold_subject(
        SUBJECT,
        [
            logged(start, partition=2, offset=0, log_time=at(20)),
            logged(grant, partition=0, offset=7, log_time=at(0)),
            logged(stop, partition=1, offset=3, log_time=at(10)),
        ],
    )

    assert not state.opted_out
    assert state.grants[REMINDER].event_id == "g1"


def test_grant_after_opt_out_counts_for_its_purposes_only() -> None:
    state = fold(
        granted(REMINDER, CONFIRMATION, event_id="g1", occurred_at=at(0)),
        opted_out(occurred_at=at(1)),
        granted(SUPPORT, event_id="g2", occurred_at=at(2)),
    )

    assert {p: g.event_id for p, g in state.grants.items()} == {SUPPORT: "g2"}
    assert not state.opted_out
    assert state.status is Status.OPTED_IN


def test_grant_after_opt_out_then_opt_in_restores_the_other_purposes_too() -> None:
    state = fold(
        granted(REMINDER, CONFIRMATION, event_id="g1", occurred_at=at(0)),
        opted_out(occurred_at=at(1)),
        granted(REMINDER, event_id="g2", occurred_at=at(2)),
        opted_in(occurred_at=at(3)),
    )

    assert {p: g.event_id for p, g in state.grants.items()} == {
        REMINDER: "g2",
        CONFIRMATION: "g1",
    }


# ---------------------------------------------------------------- ordering of ties


def test_same_occurred_at_is_ordered_by_log_time() -> None:
    stop = opted_out(event_id="stop", occurred_at=at(5))
    start = opted_in(event_id="start", occurred_at=at(5))
    grant = granted(REMINDER, occurred_at=at(0))

    state = fold_subject(
        SUBJECT,
        [
            logged(grant, offset=0, log_time=at(0)),
            logged(start, partition=0, offset=1, log_time=at(7)),
            logged(stop, partition=1, offset=9, log_time=at(6)),
        ],
    )

    assert not state.opted_out
    assert state.last_event_id == "start"


def test_same_occurred_at_and_log_time_is_ordered_by_partition() -> None:
    stop = opted_out(event_id="stop", occurred_at=at(5))
    start = opted_in(event_id="start", occurred_at=at(5))

    state = fold_subject(
        SUBJECT,
        [
            logged(stop, partition=2, offset=0, log_time=at(6)),
            logged(start, partition=1, offset=50, log_time=at(6)),
        ],
    )

    assert state.opted_out
    assert state.last_event_id == "stop"


def test_same_occurred_at_log_time_and_partition_is_ordered_by_offset() -> None:
    stop = opted_out(event_id="stop", occurred_at=at(5))
    start = opted_in(event_id="start", occurred_at=at(5))

    state = fold_subject(
        SUBJECT,
        [
            logged(start, partition=0, offset=4, log_time=at(6)),
            logged(stop, partition=0, offset=3, log_time=at(6)),
        ],
    )

    assert not state.opted_out
    assert state.last_event_id == "start"


def test_occurred_at_is_compared_as_an_instant_across_offsets() -> None:
    early = granted(REMINDER, occurred_at=at(10).astimezone(MOSCOW))  # 13:10+03:00
    stop = opted_out(occurred_at=at(20))  # 10:20Z: later, though its wall clock reads earlier

    assert fold(stop, early).opted_out


# ---------------------------------------------------------------- idempotency


def test_duplicate_event_id_is_folded_once() -> None:
    grant = granted(REMINDER, event_id="g1", occurred_at=at(0))
    stop = opted_out(event_id="stop", occurred_at=at(1))

    state = fold_subject(
        SUBJECT,
        [
            logged(grant, offset=0, log_time=at(0)),
            logged(stop, offset=1, log_time=at(1)),
            logged(grant, offset=2, log_time=at(2)),  # a producer retry
            logged(stop, partition=1, offset=0, log_time=at(3)),
        ],
    )

    assert state.version == 2
    assert state.opted_out


def test_redelivered_opt_in_after_a_newer_opt_out_is_ignored() -> None:
    start = opted_in(event_id="start", occurred_at=at(1))

    state = fold(
        granted(REMINDER, occurred_at=at(0)),
        start,
        opted_out(occurred_at=at(2)),
        start,
    )

    assert state.opted_out
    assert state.version == 3


def test_duplicate_event_id_keeps_the_record_seen_first() -> None:
    grant = granted(REMINDER, occurred_at=at(0))
    stop = opted_out(event_id="X", occurred_at=at(10))
    reused = opted_in(event_id="X", occurred_at=at(5))

    state = fold_subject(
        SUBJECT,
        [
            logged(grant, offset=0, log_time=at(0)),
            logged(stop, offset=1, log_time=at(10)),
            logged(reused, offset=2, log_time=at(11)),
        ],
    )

    assert state.opted_out


# ---------------------------------------------------------------- version, last_event_id


def test_version_counts_distinct_events_and_last_event_id_is_the_last_in_fold_order() -> None:
    state = fold(
        granted(REMINDER, event_id="g1", occurred_at=at(0)),
        opted_out(event_id="stop", occurred_at=at(10)),
        revoked(event_id="r-late", occurred_at=at(5)),  # arrives last, sorts second
    )

    assert state.version == 3
    assert state.last_event_id == "stop"


@pytest.mark.parametrize(
    "event",
    [
        granted(REMINDER, event_id="e"),
        revoked(event_id="e"),
        opted_out(event_id="e"),
        opted_in(event_id="e"),
    ],
    ids=["granted", "revoked", "opted-out", "opted-in"],
)
def test_every_event_type_bumps_version_and_sets_last_event_id(event: ConsentEvent) -> None:
    state = evolve(SubjectState(subject=SUBJECT, version=4, last_event_id="before"), event)

    assert state.version == 5
    assert state.last_event_id == "e"


def test_evolve_leaves_the_given_state_untouched() -> None:
    before = fold(granted(REMINDER, occurred_at=T0))

    after = evolve(before, opted_out(occurred_at=at(1)))

    assert before.grants
    assert not before.opted_out
    assert after.opted_out


@pytest.mark.parametrize(
    ("events", "status"),
    [
        ([], Status.UNKNOWN),
        ([granted(REMINDER)], Status.OPTED_IN),
        ([granted(REMINDER), revoked(occurred_at=at(1))], Status.UNKNOWN),
        ([granted(REMINDER), opted_out(occurred_at=at(1))], Status.OPTED_OUT),
        ([opted_out(), opted_in(occurred_at=at(1))], Status.UNKNOWN),
        (
            [granted(REMINDER), opted_out(occurred_at=at(1)), opted_in(occurred_at=at(2))],
            Status.OPTED_IN,
        ),
        ([opted_out(), granted(*EVERY_PURPOSE, occurred_at=at(1))], Status.OPTED_IN),
    ],
    ids=[
        "nothing",
        "granted",
        "all-revoked",
        "opted-out",
        "opt-in-with-nothing-to-restore",
        "restored",
        "granted-after-opt-out",
    ],
)
def test_status_is_opted_out_then_opted_in_with_grants_else_unknown(
    events: list[ConsentEvent], status: Status
) -> None:
    assert fold_subject(SUBJECT, arrived(*events)).status is status
