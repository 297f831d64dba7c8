"""The send gate decides with no I/O: decide_send(state, request, facts) -> verdict."""

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from shared.consent.state import SubjectState
from shared.contract.decisions import Decision, Reason
from shared.contract.purposes import OPT_OUT_CONFIRMATION, permitted_purpose
from shared.contract.requests import SendRequest

# Undeliverable reports (WhatsApp 131026) of one identifier, with no message from
# the person since, after which the person is unreachable. One may be passing (an old app
# version); three are not. A constant, not a setting: the audit replays the same.
UNREACHABLE_AFTER = 3


class FrequencyPolicy(BaseModel):
    """Holds the frequency limit of clause 6.1. The default (20 per rolling 24 h)
    leaves room for a support conversation while stopping a runaway loop or a reminder
    storm."""

    model_config = ConfigDict(frozen=True)

    limit: int = Field(default=20, ge=1)
    window: timedelta = timedelta(hours=24)


class SendFacts(BaseModel):
    """Holds what the dispatcher's own history says about this request."""

    model_config = ConfigDict(frozen=True)

    confirmation_already_sent: bool = False
    dispatched_in_window: int = 0


class Verdict(BaseModel):
    """Holds what the rules make of one request: the decision and why."""

    model_config = ConfigDict(frozen=True)

    decision: Decision
    reason: Reason
    consent_event_id: str | None = None
    detail: str | None = None
    not_before: datetime | None = None


def _drop(reason: Reason, detail: str, consent_event_id: str | None = None) -> Verdict:
    return Verdict(
        decision=Decision.DROPPED, reason=reason, detail=detail, consent_event_id=consent_event_id
    )


def decide_send(
    state: SubjectState | None,
    request: SendRequest,
    facts: SendFacts,
    now: datetime,
    frequency: FrequencyPolicy,
) -> Verdict:
    """`state` is None (or without history) when the recipient has never been seen."""
    if state is not None and state.erasure_event_id is not None:
        # Confirmations too: the person asked us to forget them, not to tell them so.
        return _drop(
            Reason.OPTED_OUT,
            "the person asked for their data to be erased: nothing is sent to them",
            state.erasure_event_id,
        )
    if request.purpose == OPT_OUT_CONFIRMATION:
        return _decide_confirmation(state, request, facts)
    purpose = permitted_purpose(request.purpose)
    if purpose is None:
        return _drop(
            Reason.PURPOSE_NOT_PERMITTED, f"{request.purpose!r} is not a clause 3.2 purpose"
        )
    if state is None or not state.has_history:
        return _drop(Reason.NO_CONSENT, "the recipient has no consent history (clause 3.3)")
    if state.opted_out:
        return _drop(Reason.OPTED_OUT, "the recipient opted out", state.opt_out_event_id)
    # Per person: a status names the number and the user id at once, not which of
    # them was addressed, and holding back more is the safe side.
    failures = max(state.failed_deliveries.values(), default=0)
    if failures >= UNREACHABLE_AFTER:
        return _drop(
            Reason.UNREACHABLE,
            f"{failures} undeliverable reports and no message from the person since",
        )
    paused = state.paused.get(purpose)
    if paused is not None:
        return _drop(
            Reason.PURPOSE_NOT_CONSENTED,
            f"{purpose.value} stopped by the person's marketing preference on the platform",
            paused.event_id,
        )
    grant = state.grants.get(purpose)
    if grant is None:
        revocation = state.revoked.get(purpose)
        return _drop(
            Reason.PURPOSE_NOT_CONSENTED,
            f"no grant for {purpose.value}" + (" (revoked)" if revocation else ""),
            revocation.event_id if revocation else None,
        )
    if grant.expired_at(now):
        return _drop(
            Reason.CONSENT_EXPIRED, f"the grant expired at {grant.expires_at}", grant.event_id
        )
    if state.held_until is not None and state.held_until > now:
        return Verdict(
            decision=Decision.DEFERRED,
            reason=Reason.PLATFORM_LIMIT,
            consent_event_id=grant.event_id,
            detail="the platform limits what the person receives (131049) until then",
            not_before=state.held_until,
        )
    if facts.dispatched_in_window >= frequency.limit:
        return _drop(
            Reason.FREQUENCY_CAPPED,
            f"{facts.dispatched_in_window} messages in the last {frequency.window}",
            grant.event_id,
        )
    return Verdict(
        decision=Decision.DISPATCHED, reason=Reason.CONSENTED, consent_event_id=grant.event_id
    )


def _decide_confirmation(
    state: SubjectState | None, request: SendRequest, facts: SendFacts
) -> Verdict:
    # Clause 4.3: one technical notification per opt-out, and only while that
    # opt-out is the subject's current state. Never frequency-capped.
    if request.opt_out_event_id is None:
        return _drop(Reason.CONFIRMATION_NOT_ALLOWED, "opt_out_event_id is required")
    if state is None or not state.opted_out or state.opt_out_event_id != request.opt_out_event_id:
        return _drop(
            Reason.CONFIRMATION_NOT_ALLOWED,
            "the recipient is not opted out by that event",
            state.opt_out_event_id if state else None,
        )
    if not state.opt_out_authenticated:
        return _drop(
            Reason.CONFIRMATION_NOT_ALLOWED,
            "the opt-out is not signed by the service that heard it on WhatsApp: only "
            "the person's own STOP gets a confirmation",
            request.opt_out_event_id,
        )
    if facts.confirmation_already_sent:
        return _drop(
            Reason.CONFIRMATION_NOT_ALLOWED,
            "a confirmation for this opt-out was already dispatched",
            request.opt_out_event_id,
        )
    return Verdict(
        decision=Decision.DISPATCHED,
        reason=Reason.OPT_OUT_CONFIRMATION,
        consent_event_id=request.opt_out_event_id,
    )
