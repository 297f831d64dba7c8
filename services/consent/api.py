"""Serves a subject's current state and history (CONTRACT.md section 6), to callers
whose token allows it, each read recorded (services/consent/access.py)."""

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from services.consent.access import AccessLog, authorise
from services.consent.erasure_requests import MAX_REASON_CHARS, erasure_requested, publish_event
from services.consent.store import ConsentStore
from services.consent.tokens import Principal, Scope, Tokens
from shared.consent.state import SubjectState
from shared.contract.events import ERASURE_API
from shared.identifiers import normalize_identifier
from shared.phone import InvalidPhoneNumberError
from shared.rejection import RejectedError

log = structlog.get_logger(__name__)


def _subject(identifier: str) -> str:
    try:
        return normalize_identifier(identifier)
    except InvalidPhoneNumberError as exc:
        raise HTTPException(
            status_code=422, detail={"reason": "invalid_phone", "detail": str(exc)}
        ) from exc


def _text(value: str) -> str:
    """Makes `value` encodable as UTF-8: a lone surrogate ("\\ud800" is valid JSON, and
    Python decodes it) is written as its escape instead of failing the response."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _plain(value: Any) -> Any:
    """Returns `value` as JSON the response can always encode: numbers as they are,
    anything else (an exception in pydantic's context, say) as its text."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    return _text(str(value))


def invalid_request(exc: RequestValidationError) -> JSONResponse:
    """Answers a request FastAPI could not validate, in the shape of this API's other
    refusals. Each error keeps where, what and its context, not the input: FastAPI's
    default handler echoes the input, and one holding a lone surrogate cannot be
    encoded, which turned the refusal into a 500."""
    errors: list[dict[str, Any]] = []
    for error in exc.errors():
        rendered = {
            "type": _plain(error.get("type")),
            "loc": [_plain(part) for part in error.get("loc", ())],
            "msg": _plain(error.get("msg")),
        }
        if isinstance(context := error.get("ctx"), dict):
            rendered["ctx"] = {_text(str(k)): _plain(v) for k, v in context.items()}
        errors.append(rendered)
    where = ".".join(map(str, errors[0]["loc"])) if errors else ""
    what = errors[0]["msg"] if errors else "the request is not valid"
    return JSONResponse(
        status_code=422,
        content={
            "detail": {
                "reason": "invalid_request",
                "detail": f"{where or 'request'}: {what}",
                "errors": errors,
            }
        },
    )


class Refusal(BaseModel):
    reason: str = Field(description="A short code: invalid_phone, invalid_request, too_large…")
    detail: str
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="On invalid_request: each error's type, loc, msg and ctx"
    )


# Documented, or the OpenAPI document would show FastAPI's default 422 (a bare list
# of errors), which this API does not send.
class Refused(BaseModel):
    """Why the request was refused."""

    detail: Refusal


class ValidatedRoute(APIRoute):
    """Renders its own validation errors (`invalid_request`): the router carries the
    handler into whichever app includes it, the service's or a test's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def validated(request: Request) -> Response:
            try:
                return await handle(request)
            except RequestValidationError as exc:
                return invalid_request(exc)

        return validated


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
    router = APIRouter(
        prefix="/v1/subjects",
        tags=["consent"],
        route_class=ValidatedRoute,
        responses={422: {"model": Refused, "description": "Refused, with the reason"}},
    )
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
        try:
            erasure = erasure_requested(
                subject, ERASURE_API, caller.name, reason, datetime.now(UTC)
            )
        except RejectedError as exc:  # the projector would dead-letter it: never recorded
            raise HTTPException(
                status_code=422, detail={"reason": exc.reason, "detail": _text(exc.detail)}
            ) from exc
        event_id = erasure.event.event_id
        try:
            await publish_event(producer, erasure)
        except KafkaError:  # the caller may retry; a repeat is harmless
            log.exception("could not record an erasure request", event_id=event_id)
            return JSONResponse(
                status_code=503,
                content={"reason": "kafka_unavailable", "detail": "the request was not recorded"},
            )
        except Exception:  # a fault of ours: named as one, not as the broker's
            log.exception("erasure request failed", event_id=event_id)
            return JSONResponse(
                status_code=500,
                content={
                    "reason": "internal_error",
                    "detail": "the request may not have been recorded; retrying is safe",
                },
            )
        return JSONResponse(
            status_code=202,
            content={
                "subject": subject,
                "event_id": event_id,
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
