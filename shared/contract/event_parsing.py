"""parse_consent_event reads a consent.events.v1 record's value as a ConsentEvent or as
the reason it cannot be one (CONTRACT.md section 2; the DLQ reasons in docs/contract.md).

The model says what is valid and why not. Most records are plain, valid events,
and for them a fast decoder (`event_fast_path`) gives the same event about
three times sooner; whatever it does not take, the model decides.
"""

from pydantic import ValidationError

from shared.contract.event_fast_path import plain_event
from shared.contract.events import EVENT_TYPES, ConsentEvent, EventType
from shared.contract.limits import EVIDENCE, decoded_within
from shared.contract.storable import storable
from shared.rejection import Rejected, rejection_from

_NUL_REFUSED = {"event_id": "invalid_event_id", "source": "invalid_schema"}
_FIELD_REASONS = {
    "event_id": "invalid_event_id",
    "occurred_at": "invalid_timestamp",
    "expires_at": "invalid_timestamp",
    "subject": "invalid_phone",
}


def parse_consent_event(raw: bytes | None) -> ConsentEvent | Rejected:
    if raw is not None and (event := plain_event(raw)) is not None:
        return event
    return validate_consent_event(raw)


def validate_consent_event(raw: bytes | None) -> ConsentEvent | Rejected:
    """Returns the model's verdict on every rule, without the fast path."""
    # Limits first: the NUL walk, the model and the projector's serialiser recurse.
    body = decoded_within(raw, EVIDENCE)
    if isinstance(body, Rejected):
        return body
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        return Rejected(
            reason="unknown_type",
            detail=f"type {kind!r} is not one of {[t.value for t in EventType]}",
        )
    # Evidence is the user's own words: a NUL in it never refuses an opt-out.
    body = storable(raw, body, _NUL_REFUSED, replaced=("evidence",))
    if isinstance(body, Rejected):
        return body
    try:
        return ConsentEvent.model_validate(body)
    except ValidationError as exc:
        return rejection_from(exc, field_reasons=_FIELD_REASONS)
