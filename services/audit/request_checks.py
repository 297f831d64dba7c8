"""Checks requests and their decisions for the audit, besides the recomputation
itself: a recorded decision the log does not give (without consent, or another
verdict than the rules give), and each request's one decision (contract section 4)."""

from collections.abc import Mapping

from services.audit.decision_refs import decision_ref, verdict_text
from services.audit.findings import EventRef, Finding, FindingKind, Severity, finding
from services.audit.history import AuditPolicy, LoggedDecision, LoggedRequest
from services.audit.subject_logs import SubjectLog
from shared.contract.decisions import FINAL_DECISIONS, Decision, DispatchDecision, Reason
from shared.dispatch.rules import Verdict
from shared.identifiers import mask_identifier
from shared.kafka.failures import UNPROCESSABLE

# A recomputed drop for one of these means the recipient's consent did not allow it.
CONSENT_LACKING = frozenset(
    {
        Reason.NO_CONSENT,
        Reason.OPTED_OUT,
        Reason.PURPOSE_NOT_CONSENTED,
        Reason.CONSENT_EXPIRED,
        Reason.PURPOSE_NOT_PERMITTED,
        Reason.CONFIRMATION_NOT_ALLOWED,
    }
)
_SHOWN_EVENTS = 20


def _who(recipient: str | None) -> str:
    return mask_identifier(recipient) if recipient else "nobody"


def mismatch_finding(
    logged: LoggedDecision,
    request: LoggedRequest | None,
    verdict: Verdict,
    subject: SubjectLog | None,
    seen: int,
) -> Finding:
    d = logged.decision
    recorded = verdict_text(d.decision, d.reason)
    recomputed = verdict_text(verdict.decision, verdict.reason)
    lacking = (
        d.decision is Decision.DISPATCHED
        and verdict.decision is Decision.DROPPED
        and verdict.reason in CONSENT_LACKING
    )
    if (
        request is not None
        and request.request is not None
        and (d.recipient, d.purpose)
        != (
            request.recipient,
            request.purpose,
        )
    ):
        lacking = False
        detail = (
            f"the decision names {_who(d.recipient)}/{d.purpose} but its request "
            f"(messages.requests.v1 {request.partition}:{request.offset}) asks "
            f"{_who(request.recipient)}/{request.purpose}"
        )
    elif _isolated_as_poison(d):
        detail = (
            f"the dispatcher dead-lettered this request as poison ({d.detail}); "
            f"dropped, never sent; the log gives {recomputed}"
        )
    elif lacking:
        detail = f"dispatched, but at its decision time the log gives {recomputed}"
    else:
        detail = (
            f"recorded {recorded} (event {d.consent_event_id}), the log gives "
            f"{recomputed} (event {verdict.consent_event_id})"
        )
    if verdict.detail:
        detail += f": {verdict.detail}"
    events = subject.visible(seen)[-_SHOWN_EVENTS:] if subject is not None else []
    if lacking:
        kind = FindingKind.DISPATCHED_WITHOUT_CONSENT
    elif d.decision is Decision.DISPATCHED and verdict.decision is Decision.DEFERRED:
        kind = FindingKind.DISPATCHED_IN_QUIET_HOURS
    elif _isolated_as_poison(d):
        kind = FindingKind.REQUEST_UNPROCESSABLE
    else:
        kind = FindingKind.DECISION_MISMATCH
    return finding(
        kind,
        request_id=d.request_id,
        recipient=d.recipient,
        purpose=d.purpose,
        at=d.decided_at,
        detail=detail,
        recorded=recorded,
        recomputed=recomputed,
        events=tuple(EventRef.of(e) for e in events),
        decisions=(decision_ref(logged),),
    )


def _isolated_as_poison(d: DispatchDecision) -> bool:
    return d.reason is Reason.INVALID_REQUEST and (d.detail or "").startswith(f"{UNPROCESSABLE}:")


def judge_requests(
    requests: Mapping[str, LoggedRequest],
    by_request: Mapping[str, list[LoggedDecision]],
    policy: AuditPolicy,
    findings: list[Finding],
) -> tuple[int, int]:
    """Every distinct request_id gets exactly one decision (contract section 4).
    Returns (requests checked, requests still pending)."""
    checked = pending = 0
    for request_id, request in requests.items():
        if not policy.in_range(request.log_time):
            continue
        checked += 1
        decided = by_request.get(request_id, [])
        if any(x.decision.decision in FINAL_DECISIONS for x in decided):
            continue
        if decided:
            # Deferred only: the final decision is owed once the window opened.
            last = decided[-1].decision
            due = last.not_before or last.decided_at
            if due > policy.as_of - policy.settle:
                pending += 1
            else:
                findings.append(_never_decided(request_id, request, last))
            continue
        if request.log_time > policy.as_of - policy.settle:
            pending += 1
            continue
        findings.append(
            finding(
                FindingKind.REQUEST_WITHOUT_DECISION,
                request_id=request_id,
                recipient=request.recipient,
                purpose=request.purpose,
                at=request.log_time,
                detail=f"no decision for the request at messages.requests.v1 "
                f"{request.partition}:{request.offset}"
                + (f" (unusable: {request.rejection})" if request.rejection else ""),
            )
        )
    for request_id, recorded in by_request.items():
        # Deferred records come before the one final decision and are not counted.
        decisions = [x for x in recorded if x.decision.decision in FINAL_DECISIONS]
        if len(decisions) < 2 or not policy.in_range(decisions[0].decision.decided_at):
            continue
        first = decisions[0].decision
        sent = sum(1 for x in decisions if x.decision.decision is Decision.DISPATCHED)
        findings.append(
            finding(
                FindingKind.REQUEST_WITH_SEVERAL_DECISIONS,
                severity=Severity.VIOLATION if sent > 1 else Severity.WARNING,
                request_id=request_id,
                recipient=first.recipient,
                purpose=first.purpose,
                at=first.decided_at,
                detail=f"{len(decisions)} decisions, {sent} of them dispatched"
                + (" (sent more than once)" if sent > 1 else ""),
                recorded=", ".join(
                    verdict_text(x.decision.decision, x.decision.reason) for x in decisions
                ),
                decisions=tuple(decision_ref(x) for x in decisions),
            )
        )
    return checked, pending


def _never_decided(request_id: str, request: LoggedRequest, last: DispatchDecision) -> Finding:
    return finding(
        FindingKind.DEFERRED_WITHOUT_FINAL_DECISION,
        request_id=request_id,
        recipient=request.recipient,
        purpose=request.purpose,
        at=last.decided_at,
        detail=f"deferred by quiet hours until {last.not_before}, and never decided since "
        f"(messages.requests.v1 {request.partition}:{request.offset})",
    )
