"""The fast path of parse_consent_event against the model, on generated records.

Whenever `plain_event` accepts a record, the model must accept it too and give an
equal event with the same JSON; whenever it declines, the model decides (and
parse_consent_event returns the model's verdict). And the plain records our own
systems write must take the fast path, or it would silently stop paying."""

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings

from bench.bench_projection import event_records
from bench.consent_seed import phones
from services.inbound.domain.classifier import DEFAULT_KEYWORDS
from services.inbound.domain.replies import reply_effects
from shared.contract.event_fast_path import plain_event
from shared.contract.event_parsing import parse_consent_event, validate_consent_event
from shared.contract.events import ConsentEvent
from shared.contract.webhook import InboundReply
from tests.support.contract_examples import CONTRACT_GRANT
from tests.support.wire_strategies import consent_event_records

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
@given(consent_event_records())
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
