"""Records a person's request to have their personal data erased (GDPR Art. 17;
docs/erasure.md section 5) as an event on consent.events.v1, like every other fact
about their consent: the consent API and the operator's command write the same event,
and from the moment it is folded nothing is sent to any of the person's identifiers
(shared/dispatch/rules.py)."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from shared.contract.event_parsing import parse_consent_event
from shared.contract.events import ConsentEvent, EventType
from shared.rejection import Rejected, RejectedError, rejection_from
from shared.topics import CONSENT_EVENTS

MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class ErasureRecord:
    """The event and the record value that carries it, the bytes the projector was
    shown to accept: what is published is exactly what was checked."""

    event: ConsentEvent
    value: bytes


def erasure_requested(
    subject: str, source: str, requested_by: str, reason: str | None, at: datetime
) -> ErasureRecord:
    """Builds the record; `subject` may be any identifier of the person (normalised
    here). Raises RejectedError, with the reason the projector would dead-letter the
    record for, when it would not be applied: an unusable identifier (`invalid_phone`),
    text that cannot be written as UTF-8 (`invalid_json`), evidence over the event
    limits (`too_large`)."""
    evidence = {"requested_by": requested_by, "reason": (reason or "not given")[:MAX_REASON_CHARS]}
    try:
        event = ConsentEvent.model_validate(
            {
                "event_id": str(uuid.uuid4()),
                "type": EventType.ERASURE_REQUESTED,
                "subject": subject,
                "occurred_at": at,
                "source": source,
                "evidence": evidence,
            }
        )
    except ValidationError as exc:
        raise _refusal(rejection_from(exc, field_reasons={"subject": "invalid_phone"})) from exc
    try:
        value = event.model_dump_json().encode()
    except PydanticSerializationError as exc:
        # A lone surrogate, as Python makes of argv bytes that are not UTF-8: the
        # evidence accepts any str, but no JSON on the log can carry it.
        raise RejectedError(
            "invalid_json", f"the event cannot be written as UTF-8 JSON: {exc}"
        ) from exc
    # The projector's own parser: a request it would dead-letter must be refused to
    # the requester, not reported as recorded.
    parsed = parse_consent_event(value)
    if isinstance(parsed, Rejected):
        raise _refusal(parsed)
    return ErasureRecord(parsed, value)


def _refusal(rejected: Rejected) -> RejectedError:
    return RejectedError(rejected.reason, rejected.detail)


async def publish_event(producer: AIOKafkaProducer, record: ErasureRecord) -> None:
    """Returns once the broker has acknowledged the record (the producer's acks)."""
    await producer.send_and_wait(
        CONSENT_EVENTS, value=record.value, key=record.event.subject.encode()
    )
