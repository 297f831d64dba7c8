"""Judges what only the ledgers show (--from-ledger): the faults met reading them,
and any dispatch to a person erased before it was decided."""

from collections.abc import Iterable

from services.audit.decision_refs import decision_ref, verdict_text
from services.audit.findings import Finding, FindingKind, finding
from services.audit.history import AuditPolicy, History, LedgerFault, LoggedDecision
from shared.contract.decisions import Decision


def judge_ledgers(history: History, policy: AuditPolicy) -> list[Finding]:
    return [
        *(_fault(f) for f in history.ledger_faults),
        *_sent_to_erased(history.about_erased, policy),
    ]


def _fault(fault: LedgerFault) -> Finding:
    # Whatever the range: the entry proves (or no longer proves) the whole past.
    return finding(
        fault.kind,
        recipient=None,
        at=fault.at,
        detail=f"{fault.ledger} partition {fault.partition} offset {fault.offset}: {fault.detail}",
    )


def _sent_to_erased(decisions: Iterable[LoggedDecision], policy: AuditPolicy) -> list[Finding]:
    return [
        finding(
            FindingKind.DISPATCHED_AFTER_OPT_OUT,
            request_id=d.request_id,
            recipient=d.recipient,
            purpose=d.purpose,
            at=d.decided_at,
            detail="dispatched to an erased person: their ledger entries are erased or their "
            "identifier is in consent.suppression, and nothing may be sent to them after "
            "their erasure request",
            recorded=verdict_text(d.decision, d.reason),
            decisions=(decision_ref(logged),),
        )
        for logged in decisions
        if (d := logged.decision).decision is Decision.DISPATCHED and policy.in_range(d.decided_at)
    ]
