"""Checks, for the audit, what was dispatched after an opt-out or an erasure request
(per decision), and each opt-out's one confirmation within the deadline (clause 4.3)
with how long until the recipient's first decision that saw it (enforcement latency)."""

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.audit.decision_refs import decision_ref, verdict_text
from services.audit.findings import EventRef, Finding, FindingKind, finding
from services.audit.history import AuditPolicy, LoggedDecision, LoggedRequest
from services.audit.subject_logs import SubjectLog
from shared.consent.state import LoggedEvent, SubjectState
from shared.contract.decisions import Decision, DispatchDecision, Reason
from shared.contract.events import EventType
from shared.contract.purposes import OPT_OUT_CONFIRMATION
from shared.dispatch.facts import DispatchFacts

# Broker and dispatcher clocks may differ a little: where to start looking for
# the first decision that saw an opt-out.
_CLOCK_SLACK = timedelta(seconds=5)

# What stops every send once acknowledged: the freshness guarantee (docs/contract.md
# section 5) and its latency figure hold for an erasure request as for a STOP.
_STOPS = frozenset({EventType.OPTED_OUT, EventType.ERASURE_REQUESTED})


@dataclass(frozen=True, slots=True)
class OptOutOutcome:
    event: LoggedEvent  # an OptedOut or an ErasureRequested
    confirmation: LoggedDecision | None  # the first dispatched confirmation for it
    enforced_by: LoggedDecision | None  # the recipient's first decision that saw it
    pending: bool  # owed a confirmation, unconfirmed but younger than the deadline

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
    nothing is dispatched to that recipient but its one confirmation, and once an
    ErasureRequested is, nothing at all to the person. Judged on the log itself: the
    events appended before decided_at less the time an append may take to be
    acknowledged, whatever the fence says, plus every event the fence covers."""
    d = logged.decision
    if d.decision is not Decision.DISPATCHED or subject is None:
        return None
    state = subject.state(_acknowledged(d, subject, ack_allowance))
    if state is None:
        return None
    if state.erasure_event_id is not None:
        # Confirmations too (shared/dispatch/rules.py): the person asked to be
        # forgotten, not to be told so.
        erasure = subject.find(state.erasure_event_id)
        return _breach(
            logged, erasure, f"{_what(d)} dispatched after the person asked to be erased"
        )
    if not state.opted_out:
        return None
    confirms_it = _confirms(d, state)
    if confirms_it and d.opt_out_event_id not in facts.confirmed:
        # An unsigned opt-out's confirmation passes here: the recomputation gives it
        # `confirmation_not_allowed`, a dispatch without consent.
        return None
    what = "a second confirmation" if confirms_it else _what(d)
    opt_out = subject.find(state.opt_out_event_id)
    return _breach(logged, opt_out, f"{what} dispatched while the recipient was opted out")


def _acknowledged(d: DispatchDecision, subject: SubjectLog, ack_allowance: timedelta) -> int:
    cutoff = d.decided_at - ack_allowance
    mask = 0
    for i, event in enumerate(subject.events):
        # What it must have seen (acknowledged before it decided) and what it did see
        # (its fence: that may hold newer events, e.g. a fresh opt-in, which count).
        if event.log_time <= cutoff or _covers(d, event):
            mask |= 1 << i
    return mask


def _confirms(d: DispatchDecision, state: SubjectState) -> bool:
    return d.reason is Reason.OPT_OUT_CONFIRMATION and d.opt_out_event_id == state.opt_out_event_id


def _what(d: DispatchDecision) -> str:
    return f"a {d.purpose} message ({d.reason.value})"


def _breach(logged: LoggedDecision, stop: LoggedEvent | None, detail: str) -> Finding:
    d = logged.decision
    if stop is not None:
        after = (d.decided_at - stop.log_time).total_seconds()
        seen = "covered by" if _covers(d, stop) else "NOT covered by"
        detail += (
            f": {stop.event.type.value} {stop.event.event_id} was appended {after:.3f}s "
            f"before the decision, at offset {stop.partition}:{stop.offset}, {seen} its fence"
        )
    return finding(
        FindingKind.DISPATCHED_AFTER_OPT_OUT,
        request_id=d.request_id,
        recipient=d.recipient,
        purpose=d.purpose,
        at=d.decided_at,
        detail=detail,
        recorded=verdict_text(d.decision, d.reason),
        events=(EventRef.of(stop),) if stop is not None else (),
        decisions=(decision_ref(logged),),
    )


def judge_opt_outs(
    subjects: Mapping[str, SubjectLog],
    requests: Mapping[str, LoggedRequest],
    by_recipient: Mapping[str, list[LoggedDecision]],
    policy: AuditPolicy,
    findings: list[Finding],
) -> list[OptOutOutcome]:
    """Checks that each opt-out owed a confirmation gets it within the deadline (clause
    4.3); returns, for each opt-out and erasure request, how long until the recipient's
    first decision that saw it (enforcement latency)."""
    asked: dict[str, list[LoggedRequest]] = defaultdict(list)
    for request in requests.values():
        if request.purpose == OPT_OUT_CONFIRMATION and request.request is not None:
            asked[request.request.opt_out_event_id or ""].append(request)
    outcomes = []
    for subject in subjects.values():
        decisions = by_recipient.get(subject.subject, [])
        outcomes += _judge_subject(subject, decisions, asked, policy, findings)
    return outcomes


def _judge_subject(
    subject: SubjectLog,
    decisions: list[LoggedDecision],
    asked: Mapping[str, list[LoggedRequest]],
    policy: AuditPolicy,
    findings: list[Finding],
) -> list[OptOutOutcome]:
    times = [x.decision.decided_at for x in decisions]
    confirmations: dict[str, LoggedDecision] = {}
    for x in decisions:
        if x.decision.decision is Decision.DISPATCHED and x.decision.opt_out_event_id:
            confirmations.setdefault(x.decision.opt_out_event_id, x)
    outcomes = []
    for event in _stops(subject, policy):
        start = bisect_left(times, event.log_time - _CLOCK_SLACK)
        enforced = next((x for x in decisions[start:] if _covers(x.decision, event)), None)
        confirmation = confirmations.get(event.event.event_id)
        owed = _confirmation_owed(event, subject, policy)
        young = policy.as_of - event.log_time < policy.confirmation_deadline
        pending = owed and confirmation is None and young
        outcomes.append(OptOutOutcome(event, confirmation, enforced, pending))
        problem = _confirmation_problem(event, confirmation, pending, policy) if owed else None
        if problem is not None:
            tried = asked.get(event.event.event_id, [])
            findings.append(_confirmation_finding(event, confirmation, tried, decisions, problem))
    return outcomes


def _stops(subject: SubjectLog, policy: AuditPolicy) -> Iterator[LoggedEvent]:
    # A person's log holds the events of every identifier linked to them: each stop is
    # judged once, with the decisions to the identifier it names, where its
    # confirmation goes.
    for event in subject.events:
        if (
            event.event.type in _STOPS
            and event.event.subject == subject.subject
            and policy.in_range(event.log_time)
        ):
            yield event


def _confirmation_owed(event: LoggedEvent, subject: SubjectLog, policy: AuditPolicy) -> bool:
    """Only the person's own, signed STOP gets a confirmation (docs/contract.md 2.1), and
    none once they asked to be erased: the rules drop every send then, and a request
    made before the confirmation fell due cancels it."""
    if event.event.type is not EventType.OPTED_OUT or not event.authenticated:
        return False
    return not _erasure_requested_by(subject, event.log_time + policy.confirmation_deadline)


def _erasure_requested_by(subject: SubjectLog, moment: datetime) -> bool:
    if not any(e.event.type is EventType.ERASURE_REQUESTED for e in subject.events):
        return False
    state = subject.state(subject.appended_by(moment))
    return state is not None and state.erasure_event_id is not None


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
