"""Records a person's request to have their personal data erased (GDPR Art. 17;
docs/erasure.md section 5) as an event on consent.events.v1, like every other fact
about their consent: the consent API and the operator's command write the same event,
and from the moment it is folded nothing is sent to any of the person's identifiers
(shared/dispatch/rules.py)."""

import uuid
from datetime import datetime

from aiokafka import AIOKafkaProducer

from shared.contract.events import ConsentEvent, EventType
from shared.topics import CONSENT_EVENTS

MAX_REASON_CHARS = 500


def erasure_requested(
    subject: str, source: str, requested_by: str, reason: str | None, at: datetime
) -> ConsentEvent:
    """Builds the event; `subject` may be any identifier of the person (validated
    and normalised here, so a bad one raises RejectedError with the reason)."""
    evidence = {"requested_by": requested_by, "reason": (reason or "not given")[:MAX_REASON_CHARS]}
    return ConsentEvent.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "type": EventType.ERASURE_REQUESTED,
            "subject": subject,
            "occurred_at": at,
            "source": source,
            "evidence": evidence,
        }
    )


async def publish_event(producer: AIOKafkaProducer, event: ConsentEvent) -> None:
    """Returns once the broker has acknowledged the record (the producer's acks)."""
    value = event.model_dump_json().encode()
    await producer.send_and_wait(CONSENT_EVENTS, value=value, key=event.subject.encode())
