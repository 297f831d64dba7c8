"""The audit knows the two rules that end an opt-out's confirmation: an opt-out not
signed by inbound gets none, and an erasure request stops every send to the person,
confirmations included. Correct behaviour under them is no finding; a send they forbid
is a violation."""

from dataclasses import replace
from datetime import timedelta

import pytest

from services.audit.findings import FindingKind, Severity
from services.audit.recompute import AuditResult
from shared.consent.state import LoggedEvent
from shared.contract.decisions import Decision, Reason
from shared.contract.events import ConsentEvent, EventType
from shared.contract.purposes import OPT_OUT_CONFIRMATION
from shared.contract.requests import SendRequest
from tests.unit.audit.builders import RecordedLog, at
from tests.unit.domain.builders import (
    SUBJECT,
    erasure_request,
    granted,
    opted_out,
    request,
)
from tests.unit.domain.test_people import BSUID, linked

DISPATCHED = Decision.DISPATCHED


def kinds(result: AuditResult) -> list[FindingKind]:
    return [f.kind for f in result.findings]


def confirmation_for(event_id: str) -> SendRequest:
    return request(OPT_OUT_CONFIRMATION, opt_out_event_id=event_id)


def append_opt_out(log: RecordedLog, minute: float, *, signed: bool) -> LoggedEvent:
    """An opt-out as the consent log holds it: `signed` False is one whose claim to come
    from WhatsApp no signature proved (taken, since it can only stop messages)."""
    stop = log.append(opted_out(occurred_at=at(minute)), at(minute))
    if not signed:
        stop = replace(stop, authenticated=False)
        log.history.events[-1] = stop
    return stop


def append_erasure(log: RecordedLog, minute: float, subject: str = SUBJECT) -> ConsentEvent:
    return log.append(erasure_request(occurred_at=at(minute), subject=subject), at(minute)).event


@pytest.mark.parametrize(("signed", "expected"), [(True, 1), (False, 0)])
def test_only_a_signed_opt_out_never_confirmed_is_opt_out_without_confirmation(
    signed: bool, expected: int
) -> None:
    log = RecordedLog()
    log.append(granted(occurred_at=at(0)), at(0))
    append_opt_out(log, 1, signed=signed)

    result = log.audit(as_of=at(7))

    assert kinds(result) == [FindingKind.OPT_OUT_WITHOUT_CONFIRMATION] * expected


def test_an_unsigned_opt_out_is_never_pending_a_confirmation() -> None:
    log = RecordedLog()
    log.append(granted(occurred_at=at(0)), at(0))
    append_opt_out(log, 1, signed=False)

    [outcome] = log.audit(as_of=at(2)).opt_outs

    assert not outcome.pending


def test_an_unsigned_opt_outs_confirmation_refused_by_the_dispatcher_is_no_finding() -> None:
    log = RecordedLog()
    log.append(granted(occurred_at=at(0)), at(0))
    stop = append_opt_out(log, 1, signed=False)
    refused = log.decide(log.ask(confirmation_for(stop.event.event_id), at(1)), at(1.01))

    result = log.audit()

    assert (refused.decision, refused.reason) == (
        Decision.DROPPED,
        Reason.CONFIRMATION_NOT_ALLOWED,
    )
    assert result.findings == []


def test_a_confirmation_dispatched_for_an_unsigned_opt_out_is_a_violation() -> None:
    """A forged STOP must not make the gate send a text to any number."""
    log = RecordedLog()
    log.append(granted(occurred_at=at(0)), at(0))
    stop_id = append_opt_out(log, 1, signed=False).event.event_id
    sent = log.ask(confirmation_for(stop_id), at(1))
    log.record(sent, DISPATCHED, Reason.OPT_OUT_CONFIRMATION, at(1.01), consent_event_id=stop_id)

    result = log.audit()

    assert kinds(result) == [FindingKind.DISPATCHED_WITHOUT_CONSENT]
    [found] = result.findings
    assert found.severity is Severity.VIOLATION
    assert found.request_id == sent.request_id
    assert "not signed" in found.detail


@pytest.mark.parametrize("erased_at", [0.5, 1.5], ids=["before-the-stop", "after-the-stop"])
def test_an_opt_out_whose_confirmation_an_erasure_request_refused_is_no_finding(
    erased_at: float,
) -> None:
    log = RecordedLog()
    log.append(granted(occurred_at=at(0)), at(0))
    stop = append_opt_out(log, 1, signed=True)
    erasure = append_erasure(log, erased_at)
    refused = log.decide(log.ask(confirmation_for(stop.event.event_id), at(2)), at(2))

    result = log.audit()

    assert (refused.decision, refused.reason, refused.consent_event_id) == (
        Decision.DROPPED,
        Reason.OPTED_OUT,
        erasure.event_id,
    )
    assert result.findings == []


def test_an_erasure_request_after_the_confirmation_fell_due_excuses_nothing() -> None:
    log = RecordedLog()
    log.append(granted(occurred_at=at(0)), at(0))
    stop = append_opt_out(log, 1, signed=True)
    append_erasure(log, 10)

    result = log.audit()

    assert kinds(result) == [FindingKind.OPT_OUT_WITHOUT_CONFIRMATION]
    assert [e.event_id for e in result.findings[0].events] == [stop.event.event_id]


def test_a_reminder_dispatched_after_an_erasure_request_is_dispatched_after_opt_out() -> None:
    log = RecordedLog()
    grant = log.append(granted(occurred_at=at(0)), at(0))
    erasure = append_erasure(log, 1)
    reminder = log.ask(request(), at(2))
    log.record(reminder, DISPATCHED, Reason.CONSENTED, at(2), consent_event_id=grant.event.event_id)

    result = log.audit()

    assert kinds(result) == [FindingKind.DISPATCHED_AFTER_OPT_OUT]
    [found] = result.findings
    assert found.severity is Severity.VIOLATION
    assert found.request_id == reminder.request_id
    assert [e.event_id for e in found.events] == [erasure.event_id]
    assert [e.type for e in found.events] == [EventType.ERASURE_REQUESTED.value]
    assert "asked to be erased" in found.detail
    assert "covered by its fence" in found.detail


def test_an_opt_outs_first_confirmation_after_an_erasure_request_is_a_breach() -> None:
    """The one confirmation an opt-out is owed is no exception once the person asked
    to be erased: they asked to be forgotten, not to be told so."""
    log = RecordedLog()
    log.append(granted(occurred_at=at(0)), at(0))
    stop_id = append_opt_out(log, 1, signed=True).event.event_id
    erasure = append_erasure(log, 1.5)
    sent = log.ask(confirmation_for(stop_id), at(2))
    log.record(sent, DISPATCHED, Reason.OPT_OUT_CONFIRMATION, at(2), consent_event_id=stop_id)

    result = log.audit()

    assert kinds(result) == [FindingKind.DISPATCHED_AFTER_OPT_OUT]
    assert [e.event_id for e in result.findings[0].events] == [erasure.event_id]


def test_an_erasure_request_of_a_linked_identifier_stops_sends_to_the_person() -> None:
    log = RecordedLog()
    log.append(linked(SUBJECT, BSUID, minutes=0), at(0))
    grant = log.append(granted(occurred_at=at(0)), at(0))
    append_erasure(log, 1, subject=BSUID)
    reminder = log.ask(request(), at(2))
    log.record(reminder, DISPATCHED, Reason.CONSENTED, at(2), consent_event_id=grant.event.event_id)

    assert FindingKind.DISPATCHED_AFTER_OPT_OUT in kinds(log.audit())


def test_the_enforcement_latency_of_an_erasure_request_is_measured() -> None:
    log = RecordedLog()
    log.append(granted(occurred_at=at(0)), at(0))
    erasure = append_erasure(log, 1)
    log.decide(log.ask(request(), at(1)), at(1) + timedelta(seconds=0.5))

    result = log.audit()

    assert result.findings == []
    [outcome] = result.opt_outs
    assert outcome.event.event.event_id == erasure.event_id
    assert outcome.latency_seconds == pytest.approx(0.5)
    assert not outcome.pending


def test_an_opt_out_of_a_linked_identifier_is_judged_once_by_its_own_confirmation() -> None:
    """The person's log holds the opt-out under each identifier; its confirmation goes
    to the one that sent STOP, and the other's lack of one is no finding."""
    log = RecordedLog()
    log.append(linked(SUBJECT, BSUID, minutes=0), at(0))
    log.append(granted(occurred_at=at(0)), at(0))
    stop = append_opt_out(log, 1, signed=True)
    log.decide(log.ask(confirmation_for(stop.event.event_id), at(1)), at(1.01))

    result = log.audit()

    assert result.findings == []
    assert [o.event.event.event_id for o in result.opt_outs] == [stop.event.event_id]
