"""The audit's judgement, pure: given a recorded history, then these findings.

A clean history gives none; each kind planted gives exactly that finding."""

from datetime import timedelta

import pytest

from services.audit.findings import FindingKind, Severity
from services.audit.recompute import AuditResult
from shared.contract.decisions import Decision, Reason
from shared.contract.purposes import OPT_OUT_CONFIRMATION
from shared.contract.requests import SendRequest
from shared.dispatch.rules import FrequencyPolicy
from tests.unit.audit.builders import RecordedLog, at
from tests.unit.domain.builders import (
    OTHER_SUBJECT,
    SUBJECT,
    granted,
    opted_in,
    opted_out,
    request,
    revoked,
)

DISPATCHED, DROPPED = Decision.DISPATCHED, Decision.DROPPED


def kinds(result: AuditResult) -> list[FindingKind]:
    return [f.kind for f in result.findings]


def confirmation_for(event_id: str) -> SendRequest:
    return request(OPT_OUT_CONFIRMATION, opt_out_event_id=event_id)


def opted_out_and_confirmed(log: RecordedLog, minute: float) -> str:
    stop = log.append(opted_out(occurred_at=at(minute)), at(minute))
    log.decide(log.ask(confirmation_for(stop.event.event_id), at(minute)), at(minute + 0.01))
    return stop.event.event_id


def test_a_clean_history_gives_no_finding_and_every_decision_recomputes_equal() -> None:
    log = RecordedLog()
    log.append(granted("event_reminder", occurred_at=at(0)), at(0))
    log.decide(log.ask(request(), at(1)), at(1))
    log.decide(log.ask(request("marketing"), at(2)), at(2))
    log.decide(log.ask(request(recipient=OTHER_SUBJECT), at(3)), at(3))
    opted_out_and_confirmed(log, 10)
    log.decide(log.ask(request(), at(11)), at(11))
    log.append(opted_in(occurred_at=at(20)), at(20))
    log.decide(log.ask(request(), at(21)), at(21))
    log.append(revoked("event_reminder", occurred_at=at(30)), at(30))
    log.decide(log.ask(request(), at(31)), at(31))

    result = log.audit()

    assert result.findings == []
    assert len(result.recomputations) == 7
    assert all(r.agrees and r.beyond_fence == 0 for r in result.recomputations)
    reasons = [x.decision.reason for x in result.checked]
    assert reasons == [
        Reason.CONSENTED,
        Reason.PURPOSE_NOT_PERMITTED,
        Reason.NO_CONSENT,
        Reason.OPT_OUT_CONFIRMATION,
        Reason.OPTED_OUT,
        Reason.CONSENTED,
        Reason.PURPOSE_NOT_CONSENTED,
    ]


def test_dispatch_to_a_recipient_without_any_consent_is_dispatched_without_consent() -> None:
    log = RecordedLog()
    cold = log.ask(request(), at(1))
    log.record(cold, DISPATCHED, Reason.CONSENTED, at(1), consent_event_id="invented")

    result = log.audit()

    assert kinds(result) == [FindingKind.DISPATCHED_WITHOUT_CONSENT]
    [found] = result.findings
    assert found.severity is Severity.VIOLATION
    assert found.request_id == cold.request_id
    assert found.recipient == "+7916*****67"
    assert found.purpose == "event_reminder"
    assert (found.recorded, found.recomputed) == ("dispatched/consented", "dropped/no_consent")


def test_dispatch_after_the_grant_expired_is_dispatched_without_consent() -> None:
    log = RecordedLog()
    grant = log.append(granted(occurred_at=at(0), expires_at=at(5)), at(0))
    late = log.ask(request(), at(6))
    log.record(late, DISPATCHED, Reason.CONSENTED, at(6), consent_event_id=grant.event.event_id)

    result = log.audit()

    assert kinds(result) == [FindingKind.DISPATCHED_WITHOUT_CONSENT]
    assert result.findings[0].recomputed == "dropped/consent_expired"
    assert [e.event_id for e in result.findings[0].events] == [grant.event.event_id]


def test_a_reminder_dispatched_after_an_opt_out_is_dispatched_after_opt_out() -> None:
    log = RecordedLog()
    grant = log.append(granted(occurred_at=at(0)), at(0))
    stop_id = opted_out_and_confirmed(log, 10)
    reminder = log.ask(request(), at(12))
    log.record(
        reminder, DISPATCHED, Reason.CONSENTED, at(12), consent_event_id=grant.event.event_id
    )

    result = log.audit()

    assert kinds(result) == [FindingKind.DISPATCHED_AFTER_OPT_OUT]
    [found] = result.findings
    assert found.severity is Severity.VIOLATION
    assert found.request_id == reminder.request_id
    assert [e.event_id for e in found.events] == [stop_id]
    assert "covered by its fence" in found.detail


def test_a_second_confirmation_of_one_opt_out_is_dispatched_after_opt_out() -> None:
    log = RecordedLog()
    log.append(granted(occurred_at=at(0)), at(0))
    stop_id = opted_out_and_confirmed(log, 10)
    again = log.ask(confirmation_for(stop_id), at(11))
    log.record(again, DISPATCHED, Reason.OPT_OUT_CONFIRMATION, at(11), consent_event_id=stop_id)

    result = log.audit()

    assert kinds(result) == [FindingKind.DISPATCHED_AFTER_OPT_OUT]
    assert "second confirmation" in result.findings[0].detail


def _dispatched_after_an_unfenced_opt_out(gap: timedelta) -> tuple[RecordedLog, str]:
    log = RecordedLog()
    grant = log.append(granted(occurred_at=at(0)), at(0))
    fence = log.fence()
    log.append(opted_out(occurred_at=at(1)), at(1))
    reminder = log.ask(request(), at(1))
    log.record(
        reminder,
        DISPATCHED,
        Reason.CONSENTED,
        at(1) + gap,
        consent_event_id=grant.event.event_id,
        fence=fence,
    )
    return log, reminder.request_id


def test_an_opt_out_appended_well_before_the_decision_counts_whatever_the_fence_says() -> None:
    """Contract section 4: once acknowledged, every decision after that moment sees it;
    a decision whose fence missed an opt-out appended long before is judged on the log."""
    log, request_id = _dispatched_after_an_unfenced_opt_out(timedelta(seconds=2))

    [found] = [f for f in log.audit().findings if f.kind is FindingKind.DISPATCHED_AFTER_OPT_OUT]
    assert found.request_id == request_id
    assert "NOT covered by its fence" in found.detail


def test_an_opt_out_appended_moments_before_and_outside_the_fence_is_no_breach() -> None:
    """The log shows the append, not the acknowledgement: an opt-out appended within the
    acknowledgement allowance that the decision's fence did not cover may not have been
    acknowledged when the decision read its end offsets."""
    log, _ = _dispatched_after_an_unfenced_opt_out(timedelta(milliseconds=5))

    kinds = {f.kind for f in log.audit().findings}
    assert FindingKind.DISPATCHED_AFTER_OPT_OUT not in kinds


def test_a_decision_before_the_opt_out_was_appended_is_no_finding() -> None:
    log = RecordedLog()
    log.append(granted(occurred_at=at(0)), at(0))
    log.decide(log.ask(request(), at(1)), at(1))
    opted_out_and_confirmed(log, 1.5)

    assert log.audit().findings == []


def test_a_recorded_drop_the_rules_would_have_sent_is_a_decision_mismatch() -> None:
    log = RecordedLog()
    log.append(granted(occurred_at=at(0)), at(0))
    asked = log.ask(request(), at(1))
    log.record(asked, DROPPED, Reason.NO_CONSENT, at(1))

    result = log.audit()

    assert kinds(result) == [FindingKind.DECISION_MISMATCH]
    [found] = result.findings
    assert found.severity is Severity.VIOLATION
    assert (found.recorded, found.recomputed) == ("dropped/no_consent", "dispatched/consented")


def test_a_send_over_the_frequency_limit_is_a_decision_mismatch() -> None:
    log = RecordedLog(FrequencyPolicy(limit=2, window=timedelta(hours=1)))
    grant = log.append(granted(occurred_at=at(0)), at(0))
    for minute in (1, 2):
        log.decide(log.ask(request(), at(minute)), at(minute))
    third = log.ask(request(), at(3))
    log.record(third, DISPATCHED, Reason.CONSENTED, at(3), consent_event_id=grant.event.event_id)
    log.decide(log.ask(request(), at(62)), at(62))  # the window has moved on: allowed

    result = log.audit()

    assert kinds(result) == [FindingKind.DECISION_MISMATCH]
    assert result.findings[0].recomputed == "dropped/frequency_capped"
    assert result.window_peak == {SUBJECT: 3}


def test_a_decision_naming_another_purpose_than_its_request_is_a_decision_mismatch() -> None:
    log = RecordedLog()
    grant = log.append(granted("event_reminder", "customer_support", occurred_at=at(0)), at(0))
    asked = log.ask(request("customer_support"), at(1))
    log.record(
        asked.model_copy(update={"purpose": "event_reminder"}),
        DISPATCHED,
        Reason.CONSENTED,
        at(1),
        consent_event_id=grant.event.event_id,
    )

    result = log.audit()

    assert kinds(result) == [FindingKind.DECISION_MISMATCH]
    assert "but its request" in result.findings[0].detail


@pytest.mark.parametrize(
    ("dispatches", "severity"), [(1, Severity.WARNING), (2, Severity.VIOLATION)]
)
def test_a_request_decided_twice_is_request_with_several_decisions(
    dispatches: int, severity: Severity
) -> None:
    log = RecordedLog()
    grant = log.append(granted(occurred_at=at(0)), at(0))
    asked = log.ask(request(), at(1))
    log.decide(asked, at(1))
    second = (DISPATCHED, Reason.CONSENTED) if dispatches == 2 else (DROPPED, Reason.NO_CONSENT)
    log.record(
        asked, *second, at(2), consent_event_id=grant.event.event_id if dispatches == 2 else None
    )

    result = log.audit()

    several = [f for f in result.findings if f.kind is FindingKind.REQUEST_WITH_SEVERAL_DECISIONS]
    assert len(several) == 1
    assert several[0].severity is severity
    assert several[0].request_id == asked.request_id
    assert len(several[0].decisions) == 2


def test_a_request_left_undecided_is_request_without_decision_once_settled() -> None:
    log = RecordedLog()
    log.append(granted(occurred_at=at(0)), at(0))
    asked = log.ask(request(), at(1))

    settled = log.audit(as_of=at(10))
    in_flight = log.audit(as_of=at(1) + timedelta(seconds=5))

    assert kinds(settled) == [FindingKind.REQUEST_WITHOUT_DECISION]
    assert settled.findings[0].request_id == asked.request_id
    assert settled.findings[0].severity is Severity.WARNING
    assert in_flight.findings == []
    assert in_flight.requests_pending == 1


def test_an_opt_out_never_confirmed_is_opt_out_without_confirmation_after_the_deadline() -> None:
    log = RecordedLog()
    log.append(granted(occurred_at=at(0)), at(0))
    stop = log.append(opted_out(occurred_at=at(1)), at(1))

    late = log.audit(as_of=at(7))
    early = log.audit(as_of=at(2))

    assert kinds(late) == [FindingKind.OPT_OUT_WITHOUT_CONFIRMATION]
    [found] = late.findings
    assert found.severity is Severity.WARNING
    assert found.purpose == OPT_OUT_CONFIRMATION
    assert [e.event_id for e in found.events] == [stop.event.event_id]
    assert early.findings == []
    assert early.opt_outs[0].pending


def test_a_confirmation_dropped_leaves_the_opt_out_without_confirmation_and_says_why() -> None:
    log = RecordedLog()
    log.append(granted(occurred_at=at(0)), at(0))
    stop = log.append(opted_out(occurred_at=at(1)), at(1))
    log.append(opted_in(occurred_at=at(1.5)), at(1.5))
    log.decide(log.ask(confirmation_for(stop.event.event_id), at(2)), at(2))

    result = log.audit()

    assert kinds(result) == [FindingKind.OPT_OUT_WITHOUT_CONFIRMATION]
    assert "confirmation_not_allowed" in result.findings[0].detail


def test_a_confirmation_after_five_minutes_is_confirmation_late() -> None:
    log = RecordedLog()
    log.append(granted(occurred_at=at(0)), at(0))
    stop = log.append(opted_out(occurred_at=at(1)), at(1))
    log.decide(log.ask(confirmation_for(stop.event.event_id), at(7)), at(7))

    result = log.audit()

    assert kinds(result) == [FindingKind.CONFIRMATION_LATE]
    assert result.findings[0].severity is Severity.WARNING
    assert "360.0s" in result.findings[0].detail


def test_a_decision_no_request_asked_for_is_decision_without_request() -> None:
    log = RecordedLog()
    log.append(granted(occurred_at=at(0)), at(0))
    log.decide(request(), at(1))  # never asked on messages.requests.v1

    result = log.audit()

    assert kinds(result) == [FindingKind.DECISION_WITHOUT_REQUEST]
    assert result.recomputations[0].agrees  # recomputed from the decision's own fields


def test_a_projection_ahead_of_the_fence_explains_a_decision_without_finding() -> None:
    """The dispatcher reads the states after its fence: a grant appended in between
    (before decided_at) may have been applied already."""
    log = RecordedLog()
    fence = log.fence()
    grant = log.append(granted(occurred_at=at(0)), at(0))
    asked = log.ask(request(), at(0))
    log.record(
        asked,
        DISPATCHED,
        Reason.CONSENTED,
        at(0) + timedelta(milliseconds=3),
        consent_event_id=grant.event.event_id,
        fence=fence,
    )

    result = log.audit()

    assert result.findings == []
    assert result.recomputations[0].beyond_fence == 1


def test_a_request_the_dispatcher_isolated_as_poison_is_a_warning_not_a_mismatch() -> None:
    log = RecordedLog()
    log.append(granted(occurred_at=at(0)), at(0))
    asked = log.ask(request(), at(1))
    log.record(
        asked,
        Decision.DROPPED,
        Reason.INVALID_REQUEST,
        at(1),
        detail="unprocessable: RecursionError: maximum recursion depth exceeded",
    )

    result = log.audit()

    assert kinds(result) == [FindingKind.REQUEST_UNPROCESSABLE]
    assert result.findings[0].severity is Severity.WARNING
    assert "RecursionError" in result.findings[0].detail


def test_an_invalid_request_drop_the_log_does_not_give_is_still_a_mismatch() -> None:
    log = RecordedLog()
    log.append(granted(occurred_at=at(0)), at(0))
    asked = log.ask(request(), at(1))
    log.record(asked, Decision.DROPPED, Reason.INVALID_REQUEST, at(1), detail="invalid_message: x")

    assert kinds(log.audit()) == [FindingKind.DECISION_MISMATCH]


def test_an_unusable_request_sent_anyway_is_a_decision_mismatch() -> None:
    from services.audit.history import LoggedRequest

    log = RecordedLog()
    log.history.requests.append(
        LoggedRequest("bad-1", SUBJECT, "event_reminder", None, "invalid_message", at(1), 0, 9)
    )
    bad = request(request_id="bad-1")
    log.record(bad, DROPPED, Reason.INVALID_REQUEST, at(1))
    log.record(request(request_id="bad-2"), DISPATCHED, Reason.CONSENTED, at(2))
    log.history.requests.append(
        LoggedRequest("bad-2", SUBJECT, "event_reminder", None, "invalid_message", at(2), 0, 10)
    )

    result = log.audit()

    assert kinds(result) == [FindingKind.DECISION_MISMATCH]
    assert result.findings[0].request_id == "bad-2"
    assert result.findings[0].recomputed == "dropped/invalid_request"


def test_only_decisions_in_range_are_checked_but_earlier_ones_count_for_frequency() -> None:
    log = RecordedLog(FrequencyPolicy(limit=1, window=timedelta(hours=1)))
    log.append(granted(occurred_at=at(0)), at(0))
    cold = log.ask(request(recipient=OTHER_SUBJECT), at(1))
    log.record(cold, DISPATCHED, Reason.CONSENTED, at(1))  # a violation, before the range
    log.decide(log.ask(request(), at(2)), at(2))
    log.decide(log.ask(request(), at(12)), at(12))  # capped by the one at minute 2

    result = log.audit(since=at(10))

    assert result.findings == []
    assert [x.decision.reason for x in result.checked] == [Reason.FREQUENCY_CAPPED]


def test_latency_runs_from_the_opt_out_to_the_first_decision_whose_fence_covers_it() -> None:
    log = RecordedLog()
    grant = log.append(granted(occurred_at=at(0)), at(0))
    fence_before = log.fence()
    stop = log.append(opted_out(occurred_at=at(1)), at(1))
    early = log.ask(request(), at(1) - timedelta(seconds=2))
    log.record(
        early,
        DISPATCHED,
        Reason.CONSENTED,
        at(1) - timedelta(seconds=1),
        consent_event_id=grant.event.event_id,
        fence=fence_before,
    )
    confirmation = log.ask(confirmation_for(stop.event.event_id), at(1))
    log.decide(confirmation, at(1) + timedelta(seconds=0.25))

    result = log.audit()

    assert result.findings == []
    [outcome] = result.opt_outs
    assert outcome.latency_seconds == pytest.approx(0.25)
    assert outcome.confirmation is not None


def test_a_grant_appended_after_the_decision_was_written_explains_nothing() -> None:
    log = RecordedLog()
    asked = log.ask(request(), at(0))
    log.record(asked, DISPATCHED, Reason.CONSENTED, at(0), consent_event_id="later-grant")
    log.append(granted(event_id="later-grant", occurred_at=at(0)), at(0) + timedelta(seconds=1))

    result = log.audit()

    assert kinds(result) == [FindingKind.DISPATCHED_WITHOUT_CONSENT]
    assert result.recomputations[0].beyond_fence == 0


def test_a_fresh_opt_in_the_fence_saw_counts_even_if_appended_after_decided_at() -> None:
    """decided_at is taken before the fence; the states read after it may hold newer
    events. A grant newer than the opt-out, seen by the decision, makes it consented."""
    log = RecordedLog()
    log.append(granted(occurred_at=at(0)), at(0))
    log.append(opted_out(occurred_at=at(1)), at(1))
    reminder = log.ask(request(), at(1))
    regrant = log.append(granted(occurred_at=at(1) + timedelta(seconds=1)), at(3))
    log.record(
        reminder,
        DISPATCHED,
        Reason.CONSENTED,
        at(2),
        consent_event_id=regrant.event.event_id,
        fence=log.fence(),
    )

    kinds = {f.kind for f in log.audit().findings}
    assert FindingKind.DISPATCHED_AFTER_OPT_OUT not in kinds
    assert FindingKind.DECISION_MISMATCH not in kinds
