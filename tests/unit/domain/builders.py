"""Small builders so that domain tests read like given/when/then."""

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.consent.fold import fold_subject
from shared.consent.state import LoggedEvent, SubjectState
from shared.contract.events import ConsentEvent, EventType
from shared.contract.purposes import Purpose
from shared.contract.requests import SendRequest
from shared.dispatch.rules import FrequencyPolicy, SendFacts, Verdict, decide_send

SUBJECT = "+79161234567"
OTHER_SUBJECT = "+447911123456"

# The contract's example morning; every test's clock is relative to it.
T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)

EVERY_PURPOSE = tuple(Purpose)

_ids = itertools.count(1)


def at(minutes: float = 0, *, hours: float = 0, days: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, hours=hours, days=days)


def _event_id(kind: str, event_id: str | None) -> str:
    return event_id if event_id is not None else f"{kind}-{next(_ids)}"


def granted(
    *purposes: Purpose | str,
    event_id: str | None = None,
    occurred_at: datetime = T0,
    expires_at: datetime | None = None,
    source: str = "event_registration",
    subject: str = SUBJECT,
    evidence: dict[str, Any] | None = None,
    timezone: str | None = None,
) -> ConsentEvent:
    return ConsentEvent(
        event_id=_event_id("granted", event_id),
        type=EventType.CONSENT_GRANTED,
        subject=subject,
        occurred_at=occurred_at,
        source=source,
        purposes=tuple(Purpose(p) for p in (purposes or (Purpose.EVENT_REMINDER,))),
        evidence=evidence if evidence is not None else {"registration_id": "R-1042"},
        expires_at=expires_at,
        timezone=timezone,
    )


def revoked(
    *purposes: Purpose | str,
    event_id: str | None = None,
    occurred_at: datetime = T0,
    source: str = "crm",
    subject: str = SUBJECT,
) -> ConsentEvent:
    """No purposes means all of them (contract section 2)."""
    return ConsentEvent(
        event_id=_event_id("revoked", event_id),
        type=EventType.CONSENT_REVOKED,
        subject=subject,
        occurred_at=occurred_at,
        source=source,
        purposes=tuple(Purpose(p) for p in purposes) if purposes else None,
    )


def _reply(kind: EventType, event_id: str, occurred_at: datetime, subject: str) -> ConsentEvent:
    return ConsentEvent(
        event_id=event_id,
        type=kind,
        subject=subject,
        occurred_at=occurred_at,
        source="whatsapp_reply",
        evidence={"message_id": f"wamid.{event_id}", "text": "STOP", "language": "en"},
    )


def opted_out(
    *, event_id: str | None = None, occurred_at: datetime = T0, subject: str = SUBJECT
) -> ConsentEvent:
    return _reply(EventType.OPTED_OUT, _event_id("opted-out", event_id), occurred_at, subject)


def opted_in(
    *, event_id: str | None = None, occurred_at: datetime = T0, subject: str = SUBJECT
) -> ConsentEvent:
    return _reply(EventType.OPTED_IN, _event_id("opted-in", event_id), occurred_at, subject)


def erasure_request(
    *, event_id: str | None = None, occurred_at: datetime = T0, subject: str = SUBJECT
) -> ConsentEvent:
    return ConsentEvent(
        event_id=_event_id("erasure", event_id),
        type=EventType.ERASURE_REQUESTED,
        subject=subject,
        occurred_at=occurred_at,
        source="erasure_api",
        evidence={"requested_by": "privacy-desk", "reason": "ticket DSR-118"},
    )


def logged(
    event: ConsentEvent,
    partition: int = 0,
    offset: int = 0,
    log_time: datetime | None = None,
) -> LoggedEvent:
    """`log_time` defaults to the event's own time: a producer with a correct clock."""
    return LoggedEvent(
        event=event,
        partition=partition,
        offset=offset,
        log_time=log_time if log_time is not None else event.occurred_at,
    )


def arrived(*events: ConsentEvent) -> list[LoggedEvent]:
    """The events in the order they reached one partition: offsets and broker times
    increase with arrival, so an event listed later is a late arrival."""
    latest = max((e.occurred_at for e in events), default=T0)
    return [
        logged(e, partition=0, offset=i, log_time=latest + timedelta(milliseconds=i))
        for i, e in enumerate(events)
    ]


def fold(*events: ConsentEvent, subject: str = SUBJECT) -> SubjectState:
    """Given these events, arriving in this order, the subject's state."""
    return fold_subject(subject, arrived(*events))


def request(
    purpose: str = Purpose.EVENT_REMINDER.value,
    *,
    request_id: str | None = None,
    recipient: str = SUBJECT,
    opt_out_event_id: str | None = None,
    requested_at: datetime | None = None,
    message: dict[str, Any] | None = None,
    timezone: str | None = None,
    deliver_by: datetime | None = None,
) -> SendRequest:
    return SendRequest(
        request_id=_event_id("request", request_id),
        recipient=recipient,
        purpose=purpose,
        message=message or {"type": "text", "text": {"body": "Reminder: the workshop at 10:00"}},
        requested_at=requested_at,
        opt_out_event_id=opt_out_event_id,
        timezone=timezone,
        deliver_by=deliver_by,
    )


DEFAULT_FREQUENCY = FrequencyPolicy()


def decide(
    state: SubjectState | None,
    send: SendRequest,
    *,
    now: datetime = T0,
    confirmation_already_sent: bool = False,
    dispatched_in_window: int = 0,
    frequency: FrequencyPolicy = DEFAULT_FREQUENCY,
) -> Verdict:
    """When this request is decided at `now`, the verdict."""
    facts = SendFacts(
        confirmation_already_sent=confirmation_already_sent,
        dispatched_in_window=dispatched_in_window,
    )
    return decide_send(state, send, facts, now, frequency)
