"""The fast path of parse_consent_event against the model, on generated records.

Whenever `plain_event` accepts a record, the model must accept it too and give an
equal event with the same JSON; whenever it declines, the model decides (and
parse_consent_event returns the model's verdict). And the plain records our own
systems write must take the fast path, or it would silently stop paying."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bench.bench_projection import event_records
from bench.consent_seed import phones
from services.inbound.domain.classifier import DEFAULT_KEYWORDS
from services.inbound.domain.replies import reply_effects
from shared.contract.event_fast_path import plain_event
from shared.contract.event_parsing import parse_consent_event, validate_consent_event
from shared.contract.events import ConsentEvent, GrantSource
from shared.contract.purposes import Purpose
from shared.contract.webhook import InboundReply
from tests.support.contract_examples import CONTRACT_GRANT

# ------------------------------------------------------------- generated records


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
    | json_leaves,
    "purposes": st.lists(
        st.sampled_from([p.value for p in Purpose] + ["marketing", "opt_out_confirmation"]),
        max_size=3,
    )
    | st.lists(json_leaves, max_size=2)
    | json_leaves,
    "evidence": json_values | st.just({"text": "STOP\x00"}),
    "expires_at": timestamps() | json_leaves,
}


@st.composite
def records(draw: st.DrawFn) -> bytes:
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
    for _ in range(draw(st.sampled_from([1, 1, 2, 0]))):
        name = draw(st.sampled_from(["extra", *sorted(SPOILED)]))
        removed = draw(st.sampled_from([False, False, False, True]))
        if name != "extra" and removed:
            fields.pop(name, None)
        else:
            fields[name] = draw(SPOILED.get(name, json_values))
    # The standard encoder: any integer, and escaped or raw UTF-8 text.
    return json.dumps(fields, ensure_ascii=draw(st.booleans())).encode()


# ---------------------------------------------------------------- properties


def assert_same_event(fast: ConsentEvent, model: object) -> None:
    assert isinstance(model, ConsentEvent), model
    assert fast == model
    assert fast.model_dump_json() == model.model_dump_json()
    assert fast.model_dump() == model.model_dump()
    for moment in ("occurred_at", "expires_at"):
        ours, theirs = getattr(fast, moment), getattr(model, moment)
        assert (ours is None) == (theirs is None)
        if ours is not None:
            assert ours.utcoffset() == theirs.utcoffset()
            assert ours.isoformat() == theirs.isoformat()
    assert [type(p) for p in fast.purposes or ()] == [type(p) for p in model.purposes or ()]


@settings(max_examples=3000, suppress_health_check=[HealthCheck.too_slow])
@given(records())
@example(orjson.dumps(CONTRACT_GRANT))
@example(orjson.dumps({**CONTRACT_GRANT, "source": "whatsapp_reply"}))
@example(orjson.dumps({**CONTRACT_GRANT, "type": "OptedOut", "source": "website_form"}))
@example(orjson.dumps({**CONTRACT_GRANT, "type": "ConsentRevoked", "purposes": []}))
@example(orjson.dumps({**CONTRACT_GRANT, "evidence": {}}))
@example(orjson.dumps({**CONTRACT_GRANT, "evidence": ["proof"]}))
@example(orjson.dumps({**CONTRACT_GRANT, "purposes": None}))
@example(orjson.dumps({**CONTRACT_GRANT, "event_id": "x" * 129}))
@example(orjson.dumps({**CONTRACT_GRANT, "occurred_at": "2026-11-27T10:00:00"}))
@example(
    b'{"event_id":"a","type":"OptedIn","type":"OptedOut","subject":"+79161234567",'
    b'"occurred_at":"2026-11-27T10:00:00Z","source":"whatsapp_reply"}'
)
@example(
    b'{"event_id":"a","type":"OptedOut","subject":"+79161234567",'
    b'"occurred_at":"2026-11-27T10:00:00Z","source":"whatsapp_reply","evidence":{"n":1e400}}'
)
@example(
    b'{"event_id":"a","type":"OptedOut","subject":"+79161234567","occurred_at":'
    b'"2026-11-27T10:00:00Z","source":"whatsapp_reply","evidence":{"n":123456789012345678901}}'
)
@example(
    b'{"event_id":"a","type":"OptedOut","subject":"+79161234567",'
    b'"occurred_at":"2026-11-27T10:00:00Z","source":"whatsapp_reply","evidence":{"t":"\xff"}}'
)
def test_what_the_fast_path_accepts_the_model_accepts_as_the_same_event(raw: bytes) -> None:
    fast = plain_event(raw)
    model = validate_consent_event(raw)
    if fast is not None:
        assert_same_event(fast, model)
    assert parse_consent_event(raw) == (fast if fast is not None else model)


@pytest.mark.parametrize(
    "occurred_at",
    [
        "2026-11-27T10:00:00Z",
        "2026-11-27T13:00:00.5+03:00",
        "2026-11-27T10:00:00.123456-00:00",
        "2026-11-27T04:30:00-05:30",
        "0002-01-01T00:00:00+01:00",
    ],
)
def test_plain_valid_events_take_the_fast_path(occurred_at: str) -> None:
    for body in (
        CONTRACT_GRANT,
        {**CONTRACT_GRANT, "expires_at": "2027-01-01T00:00:00Z"},
        {**CONTRACT_GRANT, "type": "ConsentRevoked", "source": "crm"},
        {**CONTRACT_GRANT, "type": "ConsentRevoked", "source": "crm", "purposes": None},
        {**CONTRACT_GRANT, "type": "OptedOut", "source": "whatsapp_reply", "purposes": None},
    ):
        raw = orjson.dumps({**body, "occurred_at": occurred_at})
        fast = plain_event(raw)
        assert fast is not None, body
        assert_same_event(fast, validate_consent_event(raw))


def test_the_events_our_services_and_benchmarks_write_take_the_fast_path() -> None:
    received = datetime(2026, 11, 27, 10, 0, 5, tzinfo=UTC)
    reply = InboundReply(
        message_id="wamid.1",
        wa_id="79161234567",
        user_id=None,
        sent_at=received - timedelta(seconds=3),
        texts=("СТОП",),
    )
    effects = reply_effects(reply, "+79161234567", received, DEFAULT_KEYWORDS)
    assert effects.event is not None
    written = [effects.event.model_dump_json().encode()]
    written += [value for _, value in event_records(phones(50), 500, "fast")]
    for raw in written:
        fast = plain_event(raw)
        assert fast is not None, raw
        assert_same_event(fast, validate_consent_event(raw))


@pytest.mark.parametrize(
    "changes",
    [
        {"purposes": ["event_reminder", "marketing"]},  # refused on a grant
        {"type": "ConsentRevoked", "source": "crm", "purposes": ["marketing"]},  # dropped
        {"extra": 1},  # ignored by the model
        {"occurred_at": "2026-11-27 10:00:00Z"},  # valid, not the canonical form
        {"occurred_at": "2026-11-27T10:00:00.1234567Z"},  # nanoseconds: truncated by the model
        {"evidence": {"text": "STOP\x00"}},  # replaced by the model
        {"occurred_at": "0001-01-01T00:00:00+01:00"},  # out of range in UTC
    ],
)
def test_records_off_the_plain_shape_are_left_to_the_model(changes: dict[str, Any]) -> None:
    raw = orjson.dumps({**CONTRACT_GRANT, **changes})
    assert plain_event(raw) is None
    assert parse_consent_event(raw) == validate_consent_event(raw)


def test_a_clamped_fast_event_is_copied_like_a_validated_one() -> None:
    raw = orjson.dumps({**CONTRACT_GRANT, "occurred_at": "2030-01-01T00:00:00+03:00"})
    fast = plain_event(raw)
    assert fast is not None
    log_time = datetime(2026, 11, 27, 10, tzinfo=UTC)
    model = validate_consent_event(raw)
    assert isinstance(model, ConsentEvent)
    assert_same_event(fast.clamped_to(log_time), model.clamped_to(log_time))
    # The fields set the fast path's events share is copied, never changed in place.
    assert fast.model_fields_set == set(ConsentEvent.model_fields)
    assert fast.clamped_to(log_time).model_fields_set is not fast.model_fields_set
