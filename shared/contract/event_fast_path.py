"""Decodes plain, valid events with msgspec: the fast path of parse_consent_event.

Validating a record with the model costs about 9 µs, most of it in the Python
validators; the projector and the rebuild read every record of the log. This
decoder takes only records of the plain shape (no unknown field, no NUL, an
evidence whose byte counts show it within the limits, the canonical RFC 3339 form
with at most microseconds, known purposes) and checks the contract's rules on
them itself, in about a third of the time. Anything else, valid or not, returns
None and goes to the model, which has the final word and names the reason for a
refusal.

So this path must never accept a record the model refuses, nor decode one
differently: `tests/unit/domain/test_event_fast_path.py` checks both on
generated records, valid and spoiled, comparing the events and their JSON.
"""

import re
from datetime import datetime
from typing import Any

import msgspec
import orjson

from shared.contract.events import (
    GRANT_SOURCES,
    WHATSAPP_REPLY,
    ConsentEvent,
    EventType,
)
from shared.contract.limits import EVIDENCE, member_clearly_within
from shared.contract.purposes import Purpose
from shared.contract.storable import may_hold_nul
from shared.contract.timestamps import known_zone
from shared.identifiers import normalize_identifier


class _Wire(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    event_id: str
    type: str
    subject: str
    occurred_at: str
    source: str
    purposes: list[str] | None = None
    # Decoded by orjson, as the model's input is: the same numbers, the same refusals.
    evidence: msgspec.Raw = msgspec.Raw(b"null")
    expires_at: str | None = None
    timezone: str | None = None
    # Named only on identity events, which the model reads: here they must be null.
    linked: None = None
    previous: None = None


_decode = msgspec.json.Decoder(_Wire).decode
# Canonical RFC 3339, read by datetime.fromisoformat exactly as pydantic reads it.
# Years 0001 and 9999 go to the model: an offset may move them out of range.
_PLAIN_TIME = re.compile(
    r"(?!0001|9999)\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})",
    re.ASCII,
)
_PURPOSES: dict[str, Purpose] = {p.value: p for p in Purpose}
_REPLY_TYPES = frozenset({EventType.OPTED_OUT.value, EventType.OPTED_IN.value})
# The contract's four types, the bulk of any log. Identity events, the platform's
# signals and erasure requests are rare and carry rules of their own: the model
# reads them.
_CONSENT_TYPES = frozenset(
    t.value
    for t in (
        EventType.CONSENT_GRANTED,
        EventType.CONSENT_REVOKED,
        EventType.OPTED_OUT,
        EventType.OPTED_IN,
    )
)
# One set for every event built here (a set each would take 755 of the 2,130 bytes
# a rebuild would then hold per event): a frozen model never adds to it in place,
# and model_copy copies it before adding the fields it updates.
_FIELDS_SET = set(ConsentEvent.model_fields)
_set = object.__setattr__


def plain_event(raw: bytes) -> ConsentEvent | None:
    """Returns the event `raw` holds when it is plain and valid; None: ask the model."""
    if may_hold_nul(raw):
        return None
    try:
        # No other member of the plain shape nests: msgspec refuses a nested value
        # where it expects a string, and any unknown member. Only the evidence needs
        # its byte counts within the limits (else the model names the reason), and
        # msgspec raises RecursionError skipping one about 1000 levels deep.
        wire = _decode(raw)
        evidence_text = bytes(wire.evidence)
        if not member_clearly_within(evidence_text, EVIDENCE):
            return None
        kind = wire.type
        evidence = orjson.loads(evidence_text)
        subject = normalize_identifier(wire.subject)
        occurred_at = _moment(wire.occurred_at)
        expires_at = None if wire.expires_at is None else _moment(wire.expires_at)
        # Ignored on replies, whatever they hold; elsewhere an unknown one is the model's.
        purposes = (
            None
            if wire.purposes is None or kind in _REPLY_TYPES
            else tuple(_PURPOSES[p] for p in wire.purposes)
        )
    except (msgspec.DecodeError, orjson.JSONDecodeError, ValueError, KeyError, RecursionError):
        return None  # InvalidPhoneNumberError is a ValueError
    if not (0 < len(wire.event_id) <= 128 and wire.source and kind in _CONSENT_TYPES):
        return None
    if evidence is not None and not isinstance(evidence, dict):
        return None
    if wire.timezone is not None and not (len(wire.timezone) <= 64 and known_zone(wire.timezone)):
        return None
    if kind == EventType.CONSENT_GRANTED:
        plain = wire.source in GRANT_SOURCES and bool(purposes) and bool(evidence)
    elif kind == EventType.CONSENT_REVOKED:
        plain = purposes != ()
    else:
        plain = wire.source == WHATSAPP_REPLY
    if not plain:
        return None
    return _built(
        {
            "event_id": wire.event_id,
            "type": EventType(kind),
            "subject": subject,
            "occurred_at": occurred_at,
            "source": wire.source,
            "purposes": purposes,
            "evidence": evidence,
            "expires_at": expires_at,
            "timezone": wire.timezone,
            "linked": None,
            "previous": None,
        }
    )


def _moment(text: str) -> datetime:
    if not _PLAIN_TIME.fullmatch(text):
        raise ValueError(text)
    return datetime.fromisoformat(text)


def _built(fields: dict[str, Any]) -> ConsentEvent:
    # What ConsentEvent.model_construct does, without its per-field walk (2.5 µs):
    # every field is given, already of the model's types.
    event = ConsentEvent.__new__(ConsentEvent)
    _set(event, "__dict__", fields)
    _set(event, "__pydantic_fields_set__", _FIELDS_SET)
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event
