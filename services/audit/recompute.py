"""The audit's judgement is pure: it recomputes every decision from the log with the
services' own `fold_subject` and `decide_send`, and checks the history.

For each decision, in the order it was made: the recipient's consent events
below the decision's fence (the consent.events.v1 positions its consent state
reflected; a decision without a fence: the events appended by its decided_at) are folded,
SendFacts are rebuilt from the decisions recorded before it, and `decide_send`
runs with now = decided_at. A recorded decision that the fence's view does not
give is still explained when a view that also holds later events, appended
before the decision was written (its record's timestamp), gives it: a fence
bounds what a decision saw only from below (the log may hold decisions whose
states were read after their fence was recorded, not in one snapshot with it),
so the projection may run ahead of the fence, never behind it."""

from collections import defaultdict
from dataclasses import dataclass, field
from operator import attrgetter

from services.audit.findings import DecisionRef, Finding, FindingKind, finding
from services.audit.forgery_checks import judge_forgeries
from services.audit.history import AuditPolicy, History, LoggedDecision, LoggedRequest
from services.audit.ledger_checks import judge_ledgers
from services.audit.opt_out_checks import OptOutOutcome, judge_opt_outs, opt_out_breach
from services.audit.request_checks import judge_requests, mismatch_finding
from services.audit.subject_logs import SubjectLog, subject_logs
from shared.consent.state import SubjectState
from shared.contract.decisions import Decision, DispatchDecision, Reason
from shared.contract.requests import SendRequest
from shared.dispatch.facts import DispatchFacts, counts_toward_cap
from shared.dispatch.rules import Verdict, decide_send
from shared.dispatch.timing import decide_in_time
from shared.kafka.log_order import first_per_id

_INVALID = Verdict(decision=Decision.DROPPED, reason=Reason.INVALID_REQUEST)


@dataclass(frozen=True, slots=True)
class Recomputation:
    request_id: str
    recorded: tuple[Decision, Reason]
    recomputed: tuple[Decision, Reason]
    agrees: bool
    beyond_fence: int  # later events the dispatcher must have seen to decide as it did


@dataclass
class AuditResult:
    findings: list[Finding] = field(default_factory=list)
    checked: list[LoggedDecision] = field(default_factory=list)  # in range, in decision order
    recomputations: list[Recomputation] = field(default_factory=list)
    opt_outs: list[OptOutOutcome] = field(default_factory=list)
    requests_checked: int = 0
    requests_pending: int = 0
    window_peak: dict[str, int] = field(default_factory=dict)  # most consented per window

    @property
    def violations(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "violation"]


def audit(history: History, policy: AuditPolicy) -> AuditResult:
    subjects = subject_logs(history.events)
    requests = first_per_id(history.requests, attrgetter("request_id"))
    facts = DispatchFacts(policy.frequency.window)
    result = AuditResult()
    by_request: dict[str, list[LoggedDecision]] = defaultdict(list)
    by_recipient: dict[str, list[LoggedDecision]] = defaultdict(list)
    for logged in sorted(history.decisions, key=LoggedDecision.order_key):
        d = logged.decision
        by_request[d.request_id].append(logged)
        if d.recipient:
            by_recipient[d.recipient].append(logged)
        if policy.in_range(d.decided_at):
            result.checked.append(logged)
            subject = subjects.get(d.recipient) if d.recipient else None
            request = requests.get(d.request_id)
            _judge(logged, request, subject, facts, history.requests_complete, result, policy)
        facts.record(d)
        if counts_toward_cap(d.decision, d.reason) and d.recipient:
            peak = facts.in_window(d.recipient, d.decided_at)
            result.window_peak[d.recipient] = max(result.window_peak.get(d.recipient, 0), peak)
    result.requests_checked, result.requests_pending = judge_requests(
        requests, by_request, policy, result.findings
    )
    result.opt_outs = judge_opt_outs(subjects, requests, by_recipient, policy, result.findings)
    result.findings.extend(judge_forgeries(history.forged, policy))
    result.findings.extend(judge_ledgers(history, policy))
    result.findings.sort(key=lambda f: (f.at, f.kind))
    return result


def _judge(
    logged: LoggedDecision,
    request: LoggedRequest | None,
    subject: SubjectLog | None,
    facts: DispatchFacts,
    requests_complete: bool,
    result: AuditResult,
    policy: AuditPolicy,
) -> None:
    d = logged.decision
    if request is None and requests_complete:
        result.findings.append(
            finding(
                FindingKind.DECISION_WITHOUT_REQUEST,
                request_id=d.request_id,
                recipient=d.recipient,
                purpose=d.purpose,
                at=d.decided_at,
                detail="no record on messages.requests.v1 carries this request_id; "
                "recomputed from the decision's own recipient and purpose",
                decisions=(DecisionRef.of(d, logged.partition, logged.offset),),
            )
        )
    asked = _asked(d, request)
    verdict, seen, beyond = _recompute(logged, asked, subject, facts, policy)
    agrees = _same(d, verdict) and _names_the_request(d, request)
    result.recomputations.append(
        Recomputation(
            d.request_id, (d.decision, d.reason), (verdict.decision, verdict.reason), agrees, beyond
        )
    )
    breach = opt_out_breach(logged, subject, facts, policy.ack_allowance)
    if breach is not None:
        result.findings.append(breach)
    elif not agrees:
        result.findings.append(mismatch_finding(logged, request, verdict, subject, seen))


def _asked(d: DispatchDecision, request: LoggedRequest | None) -> SendRequest | None:
    """Returns what was asked: the request, or (no request read) the decision's own fields;
    None when nothing usable was asked, which the dispatcher must call invalid."""
    if request is not None:
        return request.request
    if d.recipient is None or d.purpose is None or d.reason is Reason.INVALID_REQUEST:
        return None
    return SendRequest.model_construct(
        request_id=d.request_id,
        recipient=d.recipient,
        purpose=d.purpose,
        message={},
        requested_at=None,
        opt_out_event_id=d.opt_out_event_id,
    )


def _recompute(
    logged: LoggedDecision,
    asked: SendRequest | None,
    subject: SubjectLog | None,
    facts: DispatchFacts,
    policy: AuditPolicy,
) -> tuple[Verdict, int, int]:
    """Returns the verdict, the view it was computed on, and how many events past the
    fence that view holds."""
    d = logged.decision
    if asked is None:
        return _INVALID, 0, 0
    fenced = subject.fenced(d) if subject is not None else 0

    def rules(state: SubjectState | None) -> Verdict:
        identifiers = state.identifiers if state is not None else ()
        send_facts = facts.for_request(asked, d.decided_at, identifiers)
        verdict = decide_send(state, asked, send_facts, d.decided_at, policy.frequency)
        known = state.timezone if state is not None else None
        return decide_in_time(verdict, asked, policy.quiet_hours, d.decided_at, known)

    verdict = rules(subject.state(fenced) if subject is not None else None)
    if _same(d, verdict) or subject is None:
        return verdict, fenced, 0
    written_at = max(d.decided_at, logged.log_time)
    for beyond, mask in enumerate(subject.wider_views(fenced, written_at), start=1):
        wider = rules(subject.state(mask))
        if _same(d, wider):
            return wider, mask, beyond
    return verdict, fenced, 0


def _same(d: DispatchDecision, verdict: Verdict) -> bool:
    return (d.decision, d.reason, d.consent_event_id, d.not_before) == (
        verdict.decision,
        verdict.reason,
        verdict.consent_event_id,
        verdict.not_before,
    )


def _names_the_request(d: DispatchDecision, request: LoggedRequest | None) -> bool:
    if request is None or request.request is None:
        return True
    return (d.recipient, d.purpose) == (request.recipient, request.purpose)
