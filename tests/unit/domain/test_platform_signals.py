"""The platform's signals in the fold and the rules: given the person's history and what
WhatsApp reported of them, then this state and this decision. And the property that
no report of the platform ever lets more through than the history without it."""

from datetime import timedelta
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.consent.fold import PLATFORM_HOLD, fold_subject
from shared.contract.decisions import Decision, Reason
from shared.contract.events import ConsentEvent, EventType
from shared.contract.purposes import Purpose
from shared.dispatch.rules import UNREACHABLE_AFTER
from tests.unit.domain.builders import (
    SUBJECT,
    T0,
    arrived,
    at,
    decide,
    fold,
    granted,
    logged,
    opted_in,
    opted_out,
    request,
    revoked,
)
from tests.unit.domain.test_fold_properties import histories

EDU, REMINDER = Purpose.EDUCATIONAL_MATERIAL, Purpose.EVENT_REMINDER
_SOURCES = {
    EventType.MARKETING_STOPPED: "whatsapp_user_preferences",
    EventType.MARKETING_RESUMED: "whatsapp_user_preferences",
    EventType.DELIVERY_LIMITED: "whatsapp_status",
    EventType.DELIVERY_FAILED: "whatsapp_status",
    EventType.USER_MESSAGED: "whatsapp_reply",
}
_ids = iter(range(10**9))


def signal(kind: EventType, minutes: float = 0, **fields: Any) -> ConsentEvent:
    return ConsentEvent(
        event_id=f"signal-{next(_ids)}",
        type=kind,
        subject=fields.pop("subject", SUBJECT),
        occurred_at=at(minutes),
        source=_SOURCES[kind],
        **fields,
    )


def stopped(minutes: float = 0, *purposes: Purpose) -> ConsentEvent:
    return signal(EventType.MARKETING_STOPPED, minutes, purposes=purposes or (EDU,))


def resumed(minutes: float = 0) -> ConsentEvent:
    return signal(EventType.MARKETING_RESUMED, minutes)


def test_a_platform_stop_takes_only_the_purposes_it_names() -> None:
    state = fold(granted(EDU, REMINDER), stopped(1))
    assert set(state.paused) == {EDU}
    assert set(state.grants) == {EDU, REMINDER}, "held back, not taken: the grants stay"
    assert decide(state, request(EDU.value)).reason is Reason.PURPOSE_NOT_CONSENTED
    assert decide(state, request(REMINDER.value)).reason is Reason.CONSENTED


def test_a_users_start_does_not_lift_a_platform_stop() -> None:
    state = fold(
        granted(EDU, REMINDER),
        stopped(1),
        opted_out(occurred_at=at(2)),
        opted_in(occurred_at=at(3)),
    )
    assert set(state.paused) == {EDU}
    assert decide(state, request(EDU.value)).reason is Reason.PURPOSE_NOT_CONSENTED
    assert decide(state, request(REMINDER.value)).reason is Reason.CONSENTED


def test_a_resume_gives_back_what_the_stop_took() -> None:
    state = fold(granted(EDU, REMINDER), stopped(1), resumed(2))
    assert state.paused == {}
    assert decide(state, request(EDU.value)).reason is Reason.CONSENTED


def test_a_resume_never_lifts_the_users_own_stop() -> None:
    history = [granted(EDU, REMINDER), stopped(1), opted_out(occurred_at=at(2)), resumed(3)]
    state = fold(*history)
    assert state.opted_out and state.grants == {}
    assert decide(state, request(EDU.value)).reason is Reason.OPTED_OUT
    # Their START restores all the STOP suspended, the resumed purpose too.
    assert set(fold(*history, opted_in(occurred_at=at(4))).grants) == {EDU, REMINDER}


def test_a_resume_without_a_stop_grants_nothing() -> None:
    assert fold(granted(REMINDER), resumed(1)).grants.keys() == {REMINDER}
    assert fold(resumed(1)).grants == {}


def test_a_resume_after_a_stop_and_a_partial_regrant_gives_back_no_suspended_purpose() -> None:
    # The STOP suspended both; the grant after it names the reminder only, so
    # educational material waits for a START, platform stop and resume or not.
    history = [granted(EDU, REMINDER), opted_out(occurred_at=at(1)), stopped(2)]
    state = fold(*history, granted(REMINDER, occurred_at=at(3)), resumed(4))
    assert decide(state, request(EDU.value)).reason is Reason.PURPOSE_NOT_CONSENTED
    assert decide(state, request(REMINDER.value)).reason is Reason.CONSENTED


def test_a_fresh_grant_after_a_platform_stop_is_the_persons_own_word() -> None:
    state = fold(granted(EDU), stopped(1), granted(EDU, occurred_at=at(2)))
    assert set(state.grants) == {EDU} and state.paused == {}


def test_a_revocation_after_a_platform_stop_is_not_undone_by_a_resume() -> None:
    state = fold(granted(EDU), stopped(1), revoked(EDU, occurred_at=at(2)), resumed(3))
    assert state.grants == {} and set(state.revoked) == {EDU}


def test_a_marketing_limit_holds_every_purpose_but_the_confirmation_for_a_day() -> None:
    state = fold(granted(REMINDER), signal(EventType.DELIVERY_LIMITED, 1))
    assert state.held_until == at(1) + PLATFORM_HOLD
    verdict = decide(state, request(), now=at(2))
    assert (verdict.decision, verdict.reason) == (Decision.DEFERRED, Reason.PLATFORM_LIMIT)
    assert verdict.not_before == state.held_until
    after = decide(state, request(), now=state.held_until + timedelta(seconds=1))
    assert after.reason is Reason.CONSENTED
    stop = opted_out(occurred_at=at(3))
    stopped_state = fold(granted(REMINDER), signal(EventType.DELIVERY_LIMITED, 1), stop)
    confirmation = request("opt_out_confirmation", opt_out_event_id=stop.event_id)
    assert decide(stopped_state, confirmation, now=at(4)).reason is Reason.OPT_OUT_CONFIRMATION


def test_repeated_undeliverable_reports_leave_the_identifier_unreachable_till_it_writes() -> None:
    failures = [signal(EventType.DELIVERY_FAILED, m) for m in range(1, UNREACHABLE_AFTER + 1)]
    almost = fold(granted(REMINDER), *failures[:-1])
    assert decide(almost, request()).reason is Reason.CONSENTED
    state = fold(granted(REMINDER), *failures)
    assert state.failed_deliveries == {SUBJECT: UNREACHABLE_AFTER}
    assert decide(state, request()).reason is Reason.UNREACHABLE
    wrote = fold(granted(REMINDER), *failures, signal(EventType.USER_MESSAGED, 10))
    assert decide(wrote, request()).reason is Reason.CONSENTED
    started = fold(
        granted(REMINDER), *failures, opted_out(occurred_at=at(10)), opted_in(occurred_at=at(11))
    )
    assert started.failed_deliveries == {}


def test_the_platforms_reports_are_no_consent_history() -> None:
    state = fold(signal(EventType.DELIVERY_FAILED), signal(EventType.USER_MESSAGED, 1))
    assert (state.version, state.last_event_id) == (0, None)
    assert decide(state, request()).reason is Reason.NO_CONSENT


signals = st.lists(
    st.tuples(
        st.sampled_from(sorted(_SOURCES, key=str)),
        st.integers(0, 20),
        st.lists(st.sampled_from(Purpose), min_size=1, max_size=3, unique=True),
    ),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(histories(), signals)
# The case random draws reach too seldom: the platform stops a granted purpose,
# the person types STOP, then the platform resumes.
@example(
    arrived(granted(EDU), opted_out(occurred_at=at(5))),
    [(EventType.MARKETING_STOPPED, 2, [EDU]), (EventType.MARKETING_RESUMED, 10, [EDU])],
)
# And a STOP, a platform stop, a grant of another purpose, then a resume.
@example(
    arrived(
        granted(EDU, REMINDER), opted_out(occurred_at=at(1)), granted(REMINDER, occurred_at=at(3))
    ),
    [(EventType.MARKETING_STOPPED, 2, [EDU]), (EventType.MARKETING_RESUMED, 4, [EDU])],
)
def test_no_report_of_the_platform_ever_lets_more_through(
    history: list[Any], reports: list[Any]
) -> None:
    events = []
    for kind, minute, purposes in reports:
        fields = {"purposes": tuple(purposes)} if kind is EventType.MARKETING_STOPPED else {}
        events.append(signal(kind, minute, **fields))
    extra = [logged(e, 3, i, e.occurred_at + timedelta(minutes=1)) for i, e in enumerate(events)]
    without = fold_subject(SUBJECT, history)
    with_reports = fold_subject(SUBJECT, history + extra)
    assert set(with_reports.grants) <= set(without.grants)
    assert with_reports.opted_out == without.opted_out
    for purpose in Purpose:
        now = T0 + timedelta(minutes=30)
        before = decide(without, request(purpose.value), now=now)
        after = decide(with_reports, request(purpose.value), now=now)
        if after.decision is Decision.DISPATCHED:
            assert before.decision is Decision.DISPATCHED
