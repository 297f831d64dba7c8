"""Sets how deep and how large a record's free-form JSON may be (docs/contract.md
section 4: `too_deep`, `too_large`), checked on the bytes before anything
decodes, cleans or validates them.

Why these numbers. WhatsApp's own objects nest 6-8 levels (an interactive list,
a template's components and their parameters), a webhook body about 10: 32 is
three times that, and far below what breaks behind the parsers (pydantic
serialises about 255 levels, orjson writes 255 and reads 1024, msgspec and
Python's recursion stop near 1000). Every member of an event or a request is
held to it, not only `evidence` and `message`: none of the contract's other
fields nests at all, and a `type` or `source` of 1000 nested lists would reach a
recursive repr or NUL walk all the same. A message or an evidence of 64 KiB is
ten times what the Cloud API takes in one message (4096 characters of text); a
webhook body of 1 MiB is inbound's HTTP limit and the broker's default record.

Cheap on the hot path (the projector and the rebuild parse about 100,000 events
a second): nothing nests deeper than it has opening brackets and no member is
longer than its record, so two byte counts (C speed) settle nearly every record,
and only the rest is measured (`json_extent`, without recursion).
"""

from dataclasses import dataclass, field
from typing import Any

from shared.contract.json_extent import members, nesting
from shared.rejection import Rejected, decode_json_object

MAX_DEPTH = 32
MAX_EVIDENCE_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 64 * 1024
# Also inbound's HTTP limit (INBOUND_MAX_BODY_BYTES): what it accepts, we read.
MAX_WEBHOOK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Every member of the record nests at most `max_depth` levels, and `member`'s
    JSON text is at most `max_bytes` long (`member` None: the record is the value)."""

    record: str
    member: str | None
    max_bytes: int
    max_depth: int = MAX_DEPTH
    # The record is one level above its members. Stored, not a property: read for
    # every record of the log.
    record_depth: int = field(init=False)

    def __post_init__(self) -> None:
        depth = self.max_depth if self.member is None else self.max_depth + 1
        object.__setattr__(self, "record_depth", depth)


EVIDENCE = Limits("the event", "evidence", MAX_EVIDENCE_BYTES)
MESSAGE = Limits("the request", "message", MAX_MESSAGE_BYTES)
WEBHOOK_BODY = Limits("the webhook body", None, MAX_WEBHOOK_BYTES)


def clearly_within(raw: bytes, limits: Limits) -> bool:
    """Returns True when the byte counts alone show the record `raw` within `limits`."""
    brackets = raw.count(b"{") + raw.count(b"[")
    return len(raw) <= limits.max_bytes and brackets <= limits.record_depth


def member_clearly_within(text: bytes, limits: Limits) -> bool:
    """Returns True when the byte counts alone show the JSON text of `limits.member`
    within `limits`, and so the record too, if no other member nests."""
    brackets = text.count(b"{") + text.count(b"[")
    return len(text) <= limits.max_bytes and brackets <= limits.max_depth


def decoded_within(raw: bytes | None, limits: Limits) -> dict[str, Any] | Rejected:
    """Returns the record as `decode_json_object` gives it, once its bytes are within
    `limits`; else `too_deep` or `too_large` (depth first)."""
    if raw is not None and not clearly_within(raw, limits):
        refused = _exceeded(raw, limits)
        if refused is not None:
            return refused
    return decode_json_object(raw)


def _exceeded(raw: bytes, limits: Limits) -> Rejected | None:
    """Measures what the byte counts left open; never raises, whatever the bytes."""
    depth = nesting(raw)
    if depth > limits.record_depth:
        return _too_deep(raw, depth, limits)
    if len(raw) <= limits.max_bytes:
        return None
    if limits.member is None:
        return _too_large(limits.record, "is", len(raw), limits)
    member = members(raw).get(limits.member)
    if member is not None and len(member.text) > limits.max_bytes:
        return _too_large(limits.member, "holds", len(member.text), limits)
    return None


def _too_deep(raw: bytes, depth: int, limits: Limits) -> Rejected:
    if limits.member is not None:
        found = {name: m.depth for name, m in members(raw).items()}
        # The limited member is named when it is too deep, else the deepest one.
        name = limits.member if found.get(limits.member, 0) > limits.max_depth else None
        name = name or max(found, key=found.__getitem__, default=None)
        if name is not None and found[name] > limits.max_depth:
            return Rejected(
                reason="too_deep",
                detail=f"{_label(name)} nests {found[name]} levels of objects and arrays, "
                f"more than the {limits.max_depth} allowed",
            )
    return Rejected(
        reason="too_deep",
        detail=f"{limits.record} nests {depth} levels of objects and arrays, "
        f"more than the {limits.record_depth} allowed",
    )


def _too_large(what: str, verb: str, size: int, limits: Limits) -> Rejected:
    return Rejected(
        reason="too_large",
        detail=f"{what} {verb} {size} bytes of JSON, more than the {limits.max_bytes} allowed",
    )


def _label(name: str) -> str:
    return name if name.isidentifier() and len(name) <= 64 else repr(name[:64])
