"""Hypothesis strategies for the wire records: valid in all their forms, then
spoiled the ways producers get them wrong (NULs, calendar edges, wrong types,
nestings and sizes around the limits and far beyond)."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hypothesis import strategies as st

from shared.contract.events import GrantSource
from shared.contract.limits import MAX_DEPTH, MAX_EVIDENCE_BYTES, MAX_MESSAGE_BYTES
from shared.contract.purposes import Purpose


def _offset(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """RFC 3339 in all its forms; near the ends of the calendar too."""
    moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
    digits = draw(st.sampled_from([0, 0, 3, 6, 1, 2, 4, 5, 7, 9]))
    fraction = "" if digits == 0 else "." + f"{moment.microsecond:06d}987"[:digits]
    separator = draw(st.sampled_from(["T", "T", "T", "t", " "]))
    zone = draw(
        st.sampled_from(["Z", "Z", "z", "-00:00", "+00:00"])
        | st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(_offset)
    )
    day = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
    return f"{day}{separator}{moment:%H:%M:%S}{fraction}{zone}"


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
evidence = st.dictionaries(st.text(max_size=6), json_values, min_size=1, max_size=3)


@dataclass(frozen=True)
class RawJson:
    """JSON text put into a record as it is: nestings json.dumps cannot write."""

    text: str


def nested(depth: int, leaf: Any, in_objects: bool) -> RawJson:
    opener, closer = ('{"a": ', "}") if in_objects else ("[", "]")
    return RawJson(opener * depth + json.dumps(leaf) + closer * depth)


def padded(value: dict[str, Any], size: int) -> dict[str, Any]:
    """`value` with its one empty string lengthened until json.dumps writes `size` bytes."""
    text = json.dumps(value)
    return json.loads(text.replace('""', json.dumps("x" * (size - len(text))), 1))


# At the depth limit and around it, then beyond what a decoder reads (1024 levels).
deep_values = st.builds(
    nested,
    st.integers(MAX_DEPTH - 2, MAX_DEPTH + 2) | st.sampled_from([300, 1025, 3000]),
    json_leaves | st.just("NUL\x00"),
    st.booleans(),
)


def large(value: dict[str, Any], limit: int) -> st.SearchStrategy[dict[str, Any]]:
    """`value` padded to the size limit, one byte either side, or four times over."""
    sizes = st.sampled_from([limit - 1, limit, limit + 1, 4 * limit])
    return sizes.map(lambda size: padded(value, size))


purposes = st.lists(st.sampled_from(list(Purpose)).map(str), min_size=1, max_size=3)
# A NUL is one spoiler among the others, not in every other text.
NO_NUL = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])
SUBJECTS = ["+79161234567", "79161234567", " +79161234567", "+14155552671", "4915123456789"]
TYPES = ["ConsentGranted", "ConsentRevoked", "OptedOut", "OptedIn"]

# A field's value as a producer might get it wrong (or unusually right).
SPOILED: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.sampled_from(["", "x" * 128, "x" * 129, "ev\x00", " "]) | json_leaves,
    "type": st.sampled_from([*TYPES, "ConsentMaybe", "optedout"]) | json_leaves,
    "subject": st.sampled_from(["+7916123", "12345", "+79161234567x", "８９１６"]) | json_leaves,
    "occurred_at": st.sampled_from(
        [
            "yesterday",
            "1795773600",
            "2026-11-27T10:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-27T10:00:00+0300",
            "2026-11-27T10:00:00",
            "2026-11-27T10:00:60Z",
            "2026-11-27T10:00:00+24:00",
            "0001-01-01T00:00:00+00:01",
            "9999-12-31T23:59:59-00:01",
        ]
    )
    | json_leaves,
    # Every type's sources on every type: the rules are per type.
    "source": st.sampled_from(["whatsapp_reply", "crm", "", *[s.value for s in GrantSource]])
    | st.sampled_from(["whatsapp_reply", "crm", "bought_list"])
    | json_leaves
    | deep_values,
    "purposes": st.lists(
        st.sampled_from([p.value for p in Purpose] + ["marketing", "opt_out_confirmation"]),
        max_size=3,
    )
    | st.lists(json_leaves, max_size=2)
    | json_leaves,
    "evidence": json_values
    | st.just({"text": "STOP\x00"})
    | deep_values
    | large({"form": ""}, MAX_EVIDENCE_BYTES),
    "expires_at": timestamps() | json_leaves,
}


@st.composite
def consent_event_records(draw: st.DrawFn) -> bytes:
    """A valid event of any type, in any of its valid forms, then up to two fields
    spoiled, removed or added."""
    kind = draw(st.sampled_from(TYPES))
    fields: dict[str, Any] = {
        "event_id": draw(st.uuids().map(str) | st.text(NO_NUL, min_size=1, max_size=128)),
        "type": kind,
        "subject": draw(st.sampled_from(SUBJECTS)),
        "occurred_at": draw(timestamps()),
    }
    if kind == "ConsentGranted":
        fields["source"] = draw(st.sampled_from([s.value for s in GrantSource]))
        fields["purposes"] = draw(purposes)
        fields["evidence"] = draw(evidence)
        if draw(st.booleans()):
            fields["expires_at"] = draw(timestamps() | st.none())
    elif kind == "ConsentRevoked":
        fields["source"] = draw(st.text(NO_NUL, min_size=1, max_size=10))
        if draw(st.booleans()):
            fields["purposes"] = draw(purposes | st.none())
    else:
        fields["source"] = "whatsapp_reply"
        if draw(st.booleans()):
            fields["evidence"] = draw(evidence)
    return _spoiled(draw, fields, SPOILED)


MESSAGES = [
    {"type": "text", "text": {"body": "Reminder: the workshop starts at 10:00"}},
    {"type": "template", "template": {"name": "reminder", "language": {"code": "ru"}}},
]
REQUEST_PURPOSES = [p.value for p in Purpose] + ["opt_out_confirmation", "marketing"]
SPOILED_REQUEST: dict[str, st.SearchStrategy[Any]] = {
    "request_id": st.sampled_from(["", "x" * 128, "x" * 129, "r\x001"]) | json_leaves | deep_values,
    "recipient": st.sampled_from(["+7916123", "12345", "+79161234567\x00"]) | json_leaves,
    "purpose": st.sampled_from(["", "event\x00reminder", "marketing"]) | json_leaves,
    "message": st.sampled_from(
        [
            {"type": "text", "text": {"body": "a\x00b"}},
            {"type": "text", "text\x00": {}},
            {"type": "text"},
            {"type": "text", "text": {"body": "x"}, "to": "79161234567"},
        ]
    )
    | json_values
    | deep_values
    | large({"type": "text", "text": {"body": ""}}, MAX_MESSAGE_BYTES),
    "requested_at": SPOILED["occurred_at"] | timestamps(),
    "opt_out_event_id": st.sampled_from(["", "x" * 129, "ev\x00"]) | json_leaves,
}


@st.composite
def send_request_records(draw: st.DrawFn) -> bytes:
    """A valid SendRequest in any of its valid forms, then up to two fields spoiled,
    removed or added."""
    fields: dict[str, Any] = {
        "request_id": draw(st.uuids().map(str) | st.text(NO_NUL, min_size=1, max_size=128)),
        "recipient": draw(st.sampled_from(SUBJECTS)),
        "purpose": draw(st.sampled_from(REQUEST_PURPOSES)),
        "message": draw(st.sampled_from(MESSAGES)),
    }
    if draw(st.booleans()):
        fields["requested_at"] = draw(timestamps())
    if fields["purpose"] == "opt_out_confirmation" or draw(st.booleans()):
        fields["opt_out_event_id"] = draw(st.uuids().map(str))
    return _spoiled(draw, fields, SPOILED_REQUEST)


def _spoiled(
    draw: st.DrawFn, fields: dict[str, Any], spoilers: dict[str, st.SearchStrategy[Any]]
) -> bytes:
    """Up to two fields spoiled or removed, or an unknown one added; then encoded by
    the standard encoder (any integer, text escaped or as raw UTF-8), with the
    RawJson values written in as they are."""
    for _ in range(draw(st.sampled_from([1, 1, 2, 0]))):
        name = draw(st.sampled_from(["extra", *sorted(spoilers)]))
        removed = draw(st.sampled_from([False, False, False, True]))
        if name != "extra" and removed:
            fields.pop(name, None)
        else:
            fields[name] = draw(spoilers.get(name, json_values | deep_values))
    ascii_only = draw(st.booleans())
    raw = {f"\U000f0000{name}": v.text for name, v in fields.items() if isinstance(v, RawJson)}
    text = json.dumps(
        {name: f"\U000f0000{name}" if isinstance(v, RawJson) else v for name, v in fields.items()},
        ensure_ascii=ascii_only,
    )
    for placeholder, value in raw.items():
        text = text.replace(json.dumps(placeholder, ensure_ascii=ascii_only), value)
    return text.encode()
