"""Holds what the audit can find, as values (pydantic, frozen): one record per finding.

Severity (docs/audit.md): a *violation* breaks a guarantee of the contract
(section 4 and 8: nothing dispatched without valid consent, nothing after an
opt-out but its one confirmation, nothing at all after an erasure request, each
decision what the rules give, never sent twice; read from the ledgers, the past
proved intact) and fails the audit; a *warning*
is reported and fails the audit only under `--strict` (missing or late
confirmations, requests left undecided, decisions without their request)."""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from shared.consent.state import LoggedEvent
from shared.contract.decisions import DispatchDecision
from shared.identifiers import mask_identifier


class FindingKind(StrEnum):
    DISPATCHED_WITHOUT_CONSENT = "dispatched_without_consent"
    DISPATCHED_AFTER_OPT_OUT = "dispatched_after_opt_out"
    DECISION_MISMATCH = "decision_mismatch"
    REQUEST_WITH_SEVERAL_DECISIONS = "request_with_several_decisions"
    REQUEST_WITHOUT_DECISION = "request_without_decision"
    OPT_OUT_WITHOUT_CONFIRMATION = "opt_out_without_confirmation"
    CONFIRMATION_LATE = "confirmation_late"
    DECISION_WITHOUT_REQUEST = "decision_without_request"
    REQUEST_UNPROCESSABLE = "request_unprocessable"
    DISPATCHED_IN_QUIET_HOURS = "dispatched_in_quiet_hours"
    DEFERRED_WITHOUT_FINAL_DECISION = "deferred_without_final_decision"
    FORGED_EVENT = "forged_event"


class LedgerFindingKind(StrEnum):
    """What only a replay of the ledgers (--from-ledger) can find: kept apart from
    FindingKind, every kind of which a replay of the topics can find."""

    LEDGER_CHAIN_BROKEN = "ledger_chain_broken"
    LEDGER_ENTRY_UNREADABLE = "ledger_entry_unreadable"


AnyKind = FindingKind | LedgerFindingKind


class Severity(StrEnum):
    VIOLATION = "violation"
    WARNING = "warning"


# The kind's usual severity; a request decided several times is a violation only
# when it was dispatched more than once (sent twice), else a warning.
SEVERITY: dict[AnyKind, Severity] = {
    FindingKind.DISPATCHED_WITHOUT_CONSENT: Severity.VIOLATION,
    FindingKind.DISPATCHED_AFTER_OPT_OUT: Severity.VIOLATION,
    FindingKind.DECISION_MISMATCH: Severity.VIOLATION,
    FindingKind.REQUEST_WITH_SEVERAL_DECISIONS: Severity.WARNING,
    FindingKind.REQUEST_WITHOUT_DECISION: Severity.WARNING,
    FindingKind.OPT_OUT_WITHOUT_CONFIRMATION: Severity.WARNING,
    FindingKind.CONFIRMATION_LATE: Severity.WARNING,
    FindingKind.DECISION_WITHOUT_REQUEST: Severity.WARNING,
    # The dispatcher isolated a request that broke it: dropped, so never a breach of
    # the policy, but a person must look at why it failed.
    FindingKind.REQUEST_UNPROCESSABLE: Severity.WARNING,
    # Clause 6: a reminder at 03:00 in the recipient's time is intrusive.
    FindingKind.DISPATCHED_IN_QUIET_HOURS: Severity.VIOLATION,
    # A lost reminder, like a request left undecided: nothing was sent.
    FindingKind.DEFERRED_WITHOUT_FINAL_DECISION: Severity.WARNING,
    # Clause 4.4: only the user can lift their STOP. The projection refused the
    # event, but whoever could write it to the log tried to speak for a user.
    FindingKind.FORGED_EVENT: Severity.VIOLATION,
    # The past is no longer proved: an entry of the durable truth was altered,
    # removed, inserted or moved (docs/erasure.md, section 3).
    LedgerFindingKind.LEDGER_CHAIN_BROKEN: Severity.VIOLATION,
    # The entry or the key table was altered, or a key replaced: what it held cannot
    # be judged, and nothing says its person was erased.
    LedgerFindingKind.LEDGER_ENTRY_UNREADABLE: Severity.VIOLATION,
}


class EventRef(BaseModel):
    """Names a consent event involved in a finding, with its place in the log."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    type: str
    occurred_at: datetime
    log_time: datetime
    partition: int
    offset: int

    @classmethod
    def of(cls, logged: LoggedEvent) -> "EventRef":
        return cls(
            event_id=logged.event.event_id,
            type=logged.event.type.value,
            occurred_at=logged.event.occurred_at,
            log_time=logged.log_time,
            partition=logged.partition,
            offset=logged.offset,
        )


class DecisionRef(BaseModel):
    """Names a decision record involved in a finding (messages.decisions.v1 position)."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    decision: str
    reason: str
    decided_at: datetime
    partition: int
    offset: int

    @classmethod
    def of(cls, decision: DispatchDecision, partition: int, offset: int) -> "DecisionRef":
        return cls(
            request_id=decision.request_id,
            decision=decision.decision.value,
            reason=decision.reason.value,
            decided_at=decision.decided_at,
            partition=partition,
            offset=offset,
        )


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: AnyKind
    severity: Severity
    request_id: str | None
    recipient: str | None  # masked (clause 5.3): enough to correlate, not to dial
    purpose: str | None
    at: datetime  # the decision's decided_at, or the event's / request's log time
    detail: str
    recorded: str | None = None  # "dispatched/consented", as on the topic
    recomputed: str | None = None  # what the same rules give on the replayed log
    events: tuple[EventRef, ...] = ()
    decisions: tuple[DecisionRef, ...] = ()


def finding(
    kind: AnyKind,
    *,
    recipient: str | None,
    at: datetime,
    detail: str,
    severity: Severity | None = None,
    request_id: str | None = None,
    purpose: str | None = None,
    recorded: str | None = None,
    recomputed: str | None = None,
    events: tuple[EventRef, ...] = (),
    decisions: tuple[DecisionRef, ...] = (),
) -> Finding:
    """Builds a finding with the recipient masked here, so no caller can forget it."""
    return Finding(
        kind=kind,
        severity=severity or SEVERITY[kind],
        request_id=request_id,
        recipient=mask_identifier(recipient) if recipient else None,
        purpose=purpose,
        at=at,
        detail=detail,
        recorded=recorded,
        recomputed=recomputed,
        events=events,
        decisions=decisions,
    )
