"""Serves a subject's current state and history (CONTRACT.md section 6), to callers
whose token allows it, each read recorded (services/consent/access.py)."""

from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.consent.access import AccessLog, authorise
from services.consent.erasure_requests import MAX_REASON_CHARS, erasure_requested, publish_event
from services.consent.store import ConsentStore
from services.consent.tokens import Principal, Scope, Tokens
from shared.consent.state import SubjectState
from shared.contract.events import ERASURE_API
from shared.identifiers import normalize_identifier
from shared.phone import InvalidPhoneNumberError


def _subject(identifier: str) -> str:
    try:
        return normalize_identifier(identifier)
    except InvalidPhoneNumberError as exc:
        raise HTTPException(
            status_code=422, detail={"reason": "invalid_phone", "detail": str(exc)}
        ) from exc


def _identifiers(subject: str, state: SubjectState | None) -> list[str]:
    return list(state.identifiers) if state and state.identifiers else [subject]


def consent_view(subject: str, state: SubjectState | None, now: datetime) -> dict[str, Any]:
    """Expiry is judged now, so the status can change without a new event."""
    if state is None:
        return {
            "subject": subject,
            "status": "unknown",
            "purposes": {},
            "revoked": {},
            "suspended_by_opt_out": [],
            "opt_out_event_id": None,
            "opted_out_at": None,
            "last_event_id": None,
            "version": 0,
            "identifiers": [subject],
            "stopped_by_platform": [],
            "held_until": None,
            "failed_deliveries": 0,
            "erasure_requested_at": None,
            "erasure_event_id": None,
        }
    # What counts now: a purpose the platform holds back is not among them.
    counting = {p: g for p, g in state.grants.items() if p not in state.paused}
    purposes = {
        purpose.value: {**grant.model_dump(mode="json"), "expired": grant.expired_at(now)}
        for purpose, grant in counting.items()
    }
    live = any(not grant.expired_at(now) for grant in counting.values())
    stopped = state.opted_out or state.erasure_event_id is not None
    status = "opted_out" if stopped else ("opted_in" if live else "unknown")
    return {
        "subject": subject,
        "status": status,
        "purposes": purposes,
        "revoked": {
            purpose.value: {
                "revoked_at": r.revoked_at.isoformat(),
                "event_id": r.event_id,
                "granted_by": r.grant.event_id,
            }
            for purpose, r in state.revoked.items()
        },
        "suspended_by_opt_out": sorted(p.value for p in state.suspended),
        "opt_out_event_id": state.opt_out_event_id if state.opted_out else None,
        "opted_out_at": state.opted_out_at.isoformat()
        if state.opted_out and state.opted_out_at
        else None,
        "last_event_id": state.last_event_id,
        "version": state.version,
        # Every identifier of the person (a phone number, a WhatsApp user id), this one too.
        "identifiers": list(state.identifiers or [subject]),
        # What the platform itself reported (shared/consent/platform_signals.py).
        "stopped_by_platform": sorted(p.value for p in state.paused),
        "held_until": state.held_until.isoformat()
        if state.held_until and state.held_until > now
        else None,
        "failed_deliveries": state.failed_deliveries.get(subject, 0),
        # The person asked to be erased: nothing is sent to them (docs/erasure.md).
        "erasure_requested_at": state.erasure_requested_at.isoformat()
        if state.erasure_requested_at
        else None,
        "erasure_event_id": state.erasure_event_id,
    }


class ErasureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(
        default=None,
        max_length=MAX_REASON_CHARS,
        description="Why, e.g. the ticket of the person's request; kept with the event",
    )


def subjects_router(
    store: ConsentStore, tokens: Tokens, access: AccessLog, producer: AIOKafkaProducer
) -> APIRouter:
    router = APIRouter(prefix="/v1/subjects", tags=["consent"])
    reader = Depends(authorise(tokens, Scope.READ))
    evidence_reader = Depends(authorise(tokens, Scope.EVIDENCE))
    eraser = Depends(authorise(tokens, Scope.ERASURE))

    @router.post("/{identifier}/erasure", status_code=202)
    async def request_erasure(
        identifier: str,
        body: ErasureRequest | None = None,
        caller: Principal = eraser,
    ) -> JSONResponse:
        """Records the person's erasure request as an ErasureRequested event; from the
        moment it is applied nothing is sent to any of their identifiers."""
        subject = _subject(identifier)
        reason = body.reason if body else None
        event = erasure_requested(subject, ERASURE_API, caller.name, reason, datetime.now(UTC))
        try:
            await publish_event(producer, event)
        except Exception:  # any produce failure: the caller may retry; a repeat is harmless
            return JSONResponse(
                status_code=503,
                content={"reason": "kafka_unavailable", "detail": "the request was not recorded"},
            )
        return JSONResponse(
            status_code=202,
            content={
                "subject": subject,
                "event_id": event.event_id,
                "status": "erasure_requested",
                "detail": "recorded on consent.events.v1; nothing more is sent to this person",
            },
        )

    @router.get("/{phone}/consent")
    async def consent(phone: str, caller: Principal = reader) -> dict[str, Any]:
        subject = _subject(phone)
        state = await store.subject(subject)
        now = datetime.now(UTC)
        await access.record(caller, Scope.READ, subject, _identifiers(subject, state), now)
        return consent_view(subject, state, now)

    @router.get("/{phone}/events")
    async def events(phone: str, caller: Principal = evidence_reader) -> dict[str, Any]:
        subject = _subject(phone)
        state = await store.subject(subject)
        identifiers = _identifiers(subject, state)
        await access.record(caller, Scope.EVIDENCE, subject, identifiers, datetime.now(UTC))
        rows = await store.events(identifiers)
        return {
            "subject": subject,
            "identifiers": identifiers,
            "events": [
                {
                    **row["payload"],
                    "log": {
                        "topic": row["topic"],
                        "partition": row["partition"],
                        "offset": row["offset"],
                        "log_time": row["log_time"].isoformat(),
                        "clamped": row["clamped"],
                    },
                }
                for row in rows
            ],
        }

    return router
