"""Checks, for the audit, what was dispatched after an opt-out (per decision),
and each opt-out's one confirmation within the deadline (clause 4.3) with how long
until the recipient's first decision that saw it (enforcement latency)."""

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from services.audit.decision_refs import decision_ref, verdict_text
from services.audit.findings import EventRef, Finding, FindingKind, finding
from services.audit.history import AuditPolicy, LoggedDecision, LoggedRequest
from services.audit.subject_logs import SubjectLog
from shared.consent.state import LoggedEvent
from shared.contract.decisions import Decision, DispatchDecision, Reason
from shared.contract.events import EventType
from shared.contract.purposes import OPT_OUT_CONFIRMATION
from shared.dispatch.facts import DispatchFacts

# Broker and dispatcher clocks may differ a little: where to start looking for
# the first decision that saw an opt-out.
_CLOCK_SLACK = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class OptOutOutcome:
    event: LoggedEvent
    confirmation: LoggedDecision | None  # the first dispatched confirmation for it
    enforced_by: LoggedDecision | None  # the recipient's first decision that saw it
    pending: bool  # unconfirmed but younger than the confirmation deadline

    @property
    def latency_seconds(self) -> float | None:
        if self.enforced_by is None:
            return None
        return (self.enforced_by.decision.decided_at - self.event.log_time).total_seconds()


def _covers(decision: DispatchDecision, event: LoggedEvent) -> bool:
    if decision.fence is None:
        return event.log_time <= decision.decided_at
    return event.offset < decision.fence.get(str(event.partition), 0)


def opt_out_breach(
    logged: LoggedDecision,
    subject: SubjectLog | None,
    facts: DispatchFacts,
    ack_allowance: timedelta = timedelta(seconds=1),
) -> Finding | None:
    """Finds a dispatch that breaks contract section 4: once an OptedOut is acknowledged,
    nothing is dispatched to that recipient but its one confirmation. Judged on the log
    itself: the events appended before decided_at less the time an append may take to be
    acknowledged, whatever the fence says, plus every event the fence covers."""
    d = logged.decision
    if d.decision is not Decision.DISPATCHED or subject is None:
        return None
    cutoff = d.decided_at - ack_allowance
    acknowledged = 0
    for i, event in enumerate(subject.events):
        # What it must have seen (acknowledged before it decided) and what it did see
        # (its fence: that may hold newer events, e.g. a fresh opt-in, which count).
        if event.log_time <= cutoff or _covers(d, event):
            acknowledged |= 1 << i
    state = subject.state(acknowledged)
    if state is None or not state.opted_out:
        return None
    confirms_it = d.reason is Reason.OPT_OUT_CONFIRMATION and (
        d.opt_out_event_id == state.opt_out_event_id
    )
    if confirms_it and d.opt_out_event_id not in facts.confirmed:
        return None
    opt_out = subject.find(state.opt_out_event_id)
    what = "a second confirmation" if confirms_it else f"a {d.purpose} message ({d.reason.value})"
    detail = f"{what} dispatched while the recipient was opted out"
    if opt_out is not None:
        after = (d.decided_at - opt_out.log_time).total_seconds()
        seen = "covered by" if _covers(d, opt_out) else "NOT covered by"
        detail += (
            f": OptedOut {opt_out.event.event_id} was appended {after:.3f}s before the "
            f"decision, at offset {opt_out.partition}:{opt_out.offset}, {seen} its fence"
        )
    return finding(
        FindingKind.DISPATCHED_AFTER_OPT_OUT,
        request_id=d.request_id,
        recipient=d.recipient,
        purpose=d.purpose,
        at=d.decided_at,
        detail=detail,
        recorded=verdict_text(d.decision, d.reason),
        events=(EventRef.of(opt_out),) if opt_out is not None else (),
        decisions=(decision_ref(logged),),
    )


def judge_opt_outs(
    subjects: Mapping[str, SubjectLog],
    requests: Mapping[str, LoggedRequest],
    by_recipient: Mapping[str, list[LoggedDecision]],
    policy: AuditPolicy,
    findings: list[Finding],
) -> list[OptOutOutcome]:
    """Checks that each opt-out gets its one confirmation within the deadline (clause
    4.3); returns how long until the recipient's first decision that saw it (enforcement
    latency)."""
    asked: dict[str, list[LoggedRequest]] = defaultdict(list)
    for request in requests.values():
        if request.purpose == OPT_OUT_CONFIRMATION and request.request is not None:
            asked[request.request.opt_out_event_id or ""].append(request)
    outcomes = []
    for subject in subjects.values():
        decisions = by_recipient.get(subject.subject, [])
        times = [x.decision.decided_at for x in decisions]
        confirmations: dict[str, LoggedDecision] = {}
        for x in decisions:
            if x.decision.decision is Decision.DISPATCHED and x.decision.opt_out_event_id:
                confirmations.setdefault(x.decision.opt_out_event_id, x)
        for event in subject.events:
            if event.event.type is not EventType.OPTED_OUT or not policy.in_range(event.log_time):
                continue
            start = bisect_left(times, event.log_time - _CLOCK_SLACK)
            enforced = next((x for x in decisions[start:] if _covers(x.decision, event)), None)
            confirmation = confirmations.get(event.event.event_id)
            pending = confirmation is None and (
                policy.as_of - event.log_time < policy.confirmation_deadline
            )
            outcomes.append(OptOutOutcome(event, confirmation, enforced, pending))
            problem = _confirmation_problem(event, confirmation, pending, policy)
            if problem is not None:
                tried = asked.get(event.event.event_id, [])
                findings.append(
                    _confirmation_finding(event, confirmation, tried, decisions, problem)
                )
    return outcomes


def _confirmation_problem(
    event: LoggedEvent, confirmation: LoggedDecision | None, pending: bool, policy: AuditPolicy
) -> FindingKind | None:
    if confirmation is None:
        return None if pending else FindingKind.OPT_OUT_WITHOUT_CONFIRMATION
    late = confirmation.decision.decided_at - event.log_time > policy.confirmation_deadline
    return FindingKind.CONFIRMATION_LATE if late else None


def _confirmation_finding(
    event: LoggedEvent,
    confirmation: LoggedDecision | None,
    requests: list[LoggedRequest],
    decisions: list[LoggedDecision],
    kind: FindingKind,
) -> Finding:
    refs: tuple[LoggedDecision, ...] = ()
    if confirmation is not None:
        delay = (confirmation.decision.decided_at - event.log_time).total_seconds()
        detail = f"the confirmation was dispatched {delay:.1f}s after the OptedOut was appended"
        request_id: str | None = confirmation.decision.request_id
        refs = (confirmation,)
    elif requests:
        request_id = requests[0].request_id
        ids = {r.request_id for r in requests}
        refs = tuple(x for x in decisions if x.decision.request_id in ids)
        said = ", ".join(sorted({x.decision.reason.value for x in refs})) or "not decided"
        detail = f"a confirmation was requested ({len(requests)}x) but not dispatched: {said}"
    else:
        request_id = None
        detail = "no opt_out_confirmation was ever requested for this opt-out"
    return finding(
        kind,
        request_id=request_id,
        recipient=event.event.subject,
        purpose=OPT_OUT_CONFIRMATION,
        at=event.log_time,
        detail=detail,
        events=(EventRef.of(event),),
        decisions=tuple(decision_ref(x) for x in refs),
    )
