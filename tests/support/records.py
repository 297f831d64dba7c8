"""Contract records as another system would write them."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import ConsumerRecord

from shared.phone import InvalidPhoneNumberError, normalize_phone


def now_iso(offset_seconds: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_seconds)).isoformat()


def consent_granted(subject: str, *purposes: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": "ConsentGranted",
        "subject": subject,
        "occurred_at": now_iso(),
        "source": "event_registration",
        "purposes": list(purposes or ["event_reminder"]),
        "evidence": {"registration_id": "R-1042"},
        **fields,
    }


def opted_out(subject: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": "OptedOut",
        "subject": subject,
        "occurred_at": now_iso(),
        "source": "whatsapp_reply",
        "evidence": {"message_id": "wamid.test", "text": "STOP", "keyword": "STOP"},
        **fields,
    }


def send_request(recipient: str, purpose: str = "event_reminder", **fields: Any) -> dict[str, Any]:
    return {
        "request_id": str(uuid.uuid4()),
        "recipient": recipient,
        "purpose": purpose,
        "message": {"type": "text", "text": {"body": "Reminder: the workshop starts at 10:00"}},
        "requested_at": now_iso(),
        **fields,
    }


def unique_phone() -> str:
    """A Russian mobile number out of a billion. The local database keeps the history
    of every earlier run: drawn from ten million (+7916...), 150 fresh numbers met a
    consented one about one run in three once 25,000 had piled up."""
    while True:
        candidate = "+79" + str(uuid.uuid4().int % 1_000_000_000).zfill(9)
        try:
            issued = normalize_phone(candidate)
        except InvalidPhoneNumberError:
            continue  # about 1 in 20,000 (+79300830021): not in the numbering plan
        ISSUED.add(issued)
        return issued


# Every number (and WhatsApp user id) handed out in this process: the services' logs
# must hold none.
ISSUED: set[str] = set()


ABSENT: Any = object()  # a field given as ABSENT is left out of the record


def consent_event(subject: str, kind: str = "ConsentGranted", /, **fields: Any) -> dict[str, Any]:
    """A valid ConsentEvent of `kind`, an hour old, with `fields` overriding."""
    body: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": kind,
        "subject": subject,
        "occurred_at": now_iso(-3600),
    }
    if kind == "ConsentGranted":
        body |= {
            "source": "event_registration",
            "purposes": ["event_reminder"],
            "evidence": {"registration_id": "R-1042"},
        }
    elif kind in ("OptedOut", "OptedIn"):
        body |= {"source": "whatsapp_reply", "evidence": {"message_id": "wamid.X", "text": "STOP"}}
    else:
        body |= {"source": "crm"}
    for name, value in fields.items():
        if value is ABSENT:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def consumer_record(
    topic: str,
    partition: int,
    offset: int,
    value: bytes = b"{}",
    *,
    key: bytes | None = None,
    headers: Sequence[tuple[str, bytes | None]] = (),
    timestamp_ms: int = 0,
) -> ConsumerRecord:
    """A record as a consumer hands it out, for the loop's logic without a broker."""
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=timestamp_ms,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value),
        headers=tuple(headers),
    )
