"""Defines DispatchDecision, one per request_id, on `messages.decisions.v1` (CONTRACT.md
section 4)."""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from shared.contract.purposes import OPT_OUT_CONFIRMATION
from shared.contract.requests import SendRequest


class Decision(StrEnum):
    """Names what became of a request: `deferred` is not final, the other two are."""

    DISPATCHED = "dispatched"
    DROPPED = "dropped"
    DEFERRED = "deferred"


class Reason(StrEnum):
    CONSENTED = "consented"
    OPT_OUT_CONFIRMATION = "opt_out_confirmation"
    NO_CONSENT = "no_consent"
    OPTED_OUT = "opted_out"
    PURPOSE_NOT_CONSENTED = "purpose_not_consented"
    CONSENT_EXPIRED = "consent_expired"
    PURPOSE_NOT_PERMITTED = "purpose_not_permitted"
    CONFIRMATION_NOT_ALLOWED = "confirmation_not_allowed"
    FREQUENCY_CAPPED = "frequency_capped"
    INVALID_REQUEST = "invalid_request"
    QUIET_HOURS = "quiet_hours"
    DELIVER_BY_PASSED = "deliver_by_passed"
    # The messaging platform's own limits on a user (WhatsApp 131049, 131026).
    PLATFORM_LIMIT = "platform_limit"
    UNREACHABLE = "unreachable"


DISPATCHING_REASONS = frozenset({Reason.CONSENTED, Reason.OPT_OUT_CONFIRMATION})
FINAL_DECISIONS = frozenset({Decision.DISPATCHED, Decision.DROPPED})


class DispatchDecision(BaseModel):
    """`fence` records the `consent.events.v1` positions (partition -> next offset)
    that the consent state used for the decision reflects: at or past the end
    offsets the dispatcher waited for, so the audit refolds exactly what it saw.
    `not_before`, on a deferred decision only, is when the request is decided again."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    recipient: str | None
    purpose: str | None
    decision: Decision
    reason: Reason
    consent_event_id: str | None = None
    decided_at: datetime
    opt_out_event_id: str | None = None
    detail: str | None = None
    fence: dict[str, int] | None = None
    not_before: datetime | None = None

    @classmethod
    def on(
        cls,
        request: SendRequest,
        decision: Decision,
        reason: Reason,
        decided_at: datetime,
        *,
        consent_event_id: str | None = None,
        detail: str | None = None,
        fence: dict[str, int] | None = None,
        not_before: datetime | None = None,
    ) -> "DispatchDecision":
        """Builds the decision on a valid request; it names the opt-out a confirmation is for."""
        return cls(
            request_id=request.request_id,
            recipient=request.recipient,
            purpose=request.purpose,
            decision=decision,
            reason=reason,
            consent_event_id=consent_event_id,
            decided_at=decided_at,
            opt_out_event_id=(
                request.opt_out_event_id if request.purpose == OPT_OUT_CONFIRMATION else None
            ),
            detail=detail,
            fence=fence,
            not_before=not_before,
        )
