"""Limits at parse time (docs/contract.md section 4): a record whose evidence,
message or webhook body nests deeper or weighs more than the contract allows is
refused as `too_deep` or `too_large` before anything decodes, cleans or
validates it, and no depth whatever makes a parser raise.

Before, a 2 KB ConsentGranted with evidence 300 levels deep passed validation and
failed in the projector's serialiser; deeper, with a NUL inside, the NUL walk
raised RecursionError; past 1024 levels it was `invalid_json`."""

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.inbound.settings import InboundSettings
from shared.contract.event_fast_path import plain_event
from shared.contract.event_parsing import parse_consent_event, validate_consent_event
from shared.contract.events import ConsentEvent
from shared.contract.limits import (
    MAX_DEPTH,
    MAX_EVIDENCE_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_WEBHOOK_BYTES,
)
from shared.contract.requests import SendRequest, parse_send_request, salvage_request_id
from shared.contract.webhook import WebhookBody, inbound_replies, parse_webhook
from shared.rejection import Rejected
from tests.support.contract_examples import CONTRACT_GRANT, CONTRACT_REQUEST
from tests.support.signing import INBOUND_KEY
from tests.support.webhooks import text_webhook

NUL = '"\\u0000"'
# A text reply as Meta sends it: 9 levels (body, entry, entry[0], changes, change,
# value, messages, message, text).
WEBHOOK = text_webhook("79161234567", "STOP", "wamid.1", timestamp="1795770000")


def nested(depth: int, leaf: str = '"x"', *, objects: bool = True) -> bytes:
    """JSON text nesting `depth` levels of objects (or arrays) around `leaf`."""
    opener, closer = ('{"a":', "}") if objects else ("[", "]")
    return (opener * depth + leaf + closer * depth).encode()


def with_member(body: dict[str, Any], name: str, text: bytes) -> bytes:
    """`body` as JSON, its member `name` written as the JSON text `text`."""
    raw = orjson.dumps({**body, name: "\x01"})
    return raw.replace(orjson.dumps(name) + b':"\\u0001"', orjson.dumps(name) + b":" + text)


def padded(value: dict[str, Any], size: int) -> bytes:
    """`value` as compact JSON of exactly `size` bytes: its one empty string lengthened."""
    text = orjson.dumps(value)
    return text.replace(b'""', b'"' + b"x" * (size - len(text)) + b'"', 1)


def refused(parsed: object, reason: str, *named: str) -> Rejected:
    assert isinstance(parsed, Rejected), parsed
    assert parsed.reason == reason, parsed
    for text in named:
        assert text in parsed.detail, parsed
    return parsed


# ---------------------------------------------------------------- ConsentEvent


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 300, 1024, 1025, 2000, 100_000])
@pytest.mark.parametrize("leaf", ['"x"', NUL])
@pytest.mark.parametrize("objects", [True, False], ids=["objects", "arrays"])
def test_evidence_nested_beyond_the_limit_is_too_deep(depth: int, leaf: str, objects: bool) -> None:
    raw = with_member(CONTRACT_GRANT, "evidence", nested(depth, leaf, objects=objects))
    assert plain_event(raw) is None
    refused(parse_consent_event(raw), "too_deep", "evidence", f" {depth} ", f" {MAX_DEPTH} ")


@pytest.mark.parametrize("leaf", ['"x"', NUL])
def test_evidence_nested_exactly_as_deep_as_allowed_is_accepted(leaf: str) -> None:
    raw = with_member(CONTRACT_GRANT, "evidence", nested(MAX_DEPTH, leaf))
    parsed = parse_consent_event(raw)
    assert isinstance(parsed, ConsentEvent), parsed
    assert "\\u0000" not in parsed.model_dump_json()  # what the projector writes


def test_evidence_over_the_size_is_too_large_and_at_the_size_accepted() -> None:
    evidence = {"form": ""}
    at_limit = with_member(CONTRACT_GRANT, "evidence", padded(evidence, MAX_EVIDENCE_BYTES))
    over = with_member(CONTRACT_GRANT, "evidence", padded(evidence, MAX_EVIDENCE_BYTES + 1))
    assert isinstance(parse_consent_event(at_limit), ConsentEvent)
    refused(parse_consent_event(over), "too_large", "evidence", str(MAX_EVIDENCE_BYTES))
    assert validate_consent_event(over) == parse_consent_event(over)


@pytest.mark.parametrize("name", ["type", "source", "event_id", "purposes", "expires_at", "x"])
def test_any_member_nested_beyond_the_limit_is_too_deep_and_named(name: str) -> None:
    """A deep `type` reached a recursive repr, a deep `source` the NUL walk."""
    raw = with_member(CONTRACT_GRANT, name, nested(1020, NUL, objects=False))
    refused(parse_consent_event(raw), "too_deep", f"{name} nests 1020 levels")


def test_a_record_not_an_object_too_deep_to_decode_is_too_deep_not_invalid_json() -> None:
    refused(parse_consent_event(nested(3000, objects=False)), "too_deep", "3000")


def test_limits_come_before_the_other_rules() -> None:
    raw = with_member({**CONTRACT_GRANT, "type": "Maybe"}, "evidence", nested(300))
    refused(parse_consent_event(raw), "too_deep")


# ---------------------------------------------------------------- SendRequest


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 300, 2000])
@pytest.mark.parametrize("leaf", ['"x"', NUL])
def test_message_nested_too_deep_is_refused_and_its_request_id_salvaged(
    depth: int, leaf: str
) -> None:
    raw = with_member(CONTRACT_REQUEST, "message", nested(depth, leaf))
    refused(parse_send_request(raw), "too_deep", "message", f" {depth} ", f" {MAX_DEPTH} ")
    assert salvage_request_id(raw) == CONTRACT_REQUEST["request_id"]


def test_message_too_large_is_refused_and_its_request_id_salvaged() -> None:
    message = padded({"type": "text", "text": {"body": ""}}, MAX_MESSAGE_BYTES + 1)
    raw = with_member(CONTRACT_REQUEST, "message", message)
    refused(parse_send_request(raw), "too_large", "message", str(MAX_MESSAGE_BYTES))
    assert salvage_request_id(raw) == CONTRACT_REQUEST["request_id"]


def test_a_message_exactly_as_deep_and_as_large_as_allowed_is_accepted() -> None:
    # message (1), text (2), then 30 more levels.
    deep = b'{"type":"text","text":{"body":"hi","context":' + nested(MAX_DEPTH - 2) + b"}}"
    large = padded({"type": "text", "text": {"body": ""}}, MAX_MESSAGE_BYTES)
    for message in (deep, large):
        parsed = parse_send_request(with_member(CONTRACT_REQUEST, "message", message))
        assert isinstance(parsed, SendRequest), parsed


def test_a_request_id_nested_too_deep_is_not_salvaged() -> None:
    raw = with_member(CONTRACT_REQUEST, "request_id", nested(2000, objects=False))
    refused(parse_send_request(raw), "too_deep", "request_id")
    assert salvage_request_id(raw) is None


# ---------------------------------------------------------------- webhook body


def _webhook_nesting(depth: int, leaf: str = '"x"') -> bytes:
    """The text reply with a message member nesting so the body nests `depth` levels."""
    return with_member(WEBHOOK, "x", nested(depth - 1, leaf))


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 300, 2000])
@pytest.mark.parametrize("leaf", ['"x"', NUL])
def test_a_webhook_body_nested_too_deep_is_refused(depth: int, leaf: str) -> None:
    refused(parse_webhook(_webhook_nesting(depth, leaf)), "too_deep", "webhook body", str(depth))


def test_a_webhook_body_over_the_size_is_too_large_and_at_the_size_accepted() -> None:
    body = {**WEBHOOK, "pad": ""}
    at_limit = parse_webhook(padded(body, MAX_WEBHOOK_BYTES))
    assert isinstance(at_limit, WebhookBody), at_limit
    assert [r.texts for r in inbound_replies(at_limit)] == [("STOP",)]
    over = parse_webhook(padded(body, MAX_WEBHOOK_BYTES + 1))
    refused(over, "too_large", "webhook body", str(MAX_WEBHOOK_BYTES + 1))


def test_a_webhook_body_exactly_as_deep_as_allowed_is_read() -> None:
    parsed = parse_webhook(_webhook_nesting(MAX_DEPTH))
    assert isinstance(parsed, WebhookBody), parsed
    assert [r.texts for r in inbound_replies(parsed)] == [("STOP",)]


def test_inbound_accepts_over_http_no_larger_a_body_than_its_consumer_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WHATSAPP_APP_SECRET", "0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("WHATSAPP_VERIFY_TOKEN", "a-verify-token-of-ours")
    monkeypatch.setenv("INBOUND_SIGNING_KEY", INBOUND_KEY.setting())
    assert InboundSettings().max_body_bytes == MAX_WEBHOOK_BYTES
    with pytest.raises(ValueError, match="max_body_bytes"):
        InboundSettings(max_body_bytes=MAX_WEBHOOK_BYTES + 1)


# ---------------------------------------------------------------- any depth


@settings(max_examples=300, deadline=None)
@given(
    depth=st.integers(0, 3000),
    objects=st.booleans(),
    leaf=st.sampled_from(['"x"', NUL, "1", "null", "{}", "[]"]),
    event_member=st.sampled_from(["evidence", "type", "source", "purposes", "extra"]),
    request_member=st.sampled_from(["message", "request_id", "purpose", "extra"]),
)
def test_whatever_the_nesting_the_parsers_return_a_value_and_never_raise(
    depth: int, objects: bool, leaf: str, event_member: str, request_member: str
) -> None:
    value = nested(depth, leaf, objects=objects)
    levels = depth + (1 if leaf in ("{}", "[]") else 0)
    event = with_member(CONTRACT_GRANT, event_member, value)
    request = with_member(CONTRACT_REQUEST, request_member, value)
    # The webhook body is the limited value: its member's levels are below its own.
    webhook = with_member(WEBHOOK, "x", value)
    results = [
        (parse_consent_event(event), ConsentEvent, levels),
        (validate_consent_event(event), ConsentEvent, levels),
        (parse_send_request(request), SendRequest, levels),
        (parse_webhook(webhook), WebhookBody, levels + 1),
    ]
    for parsed, model, nesting in results:
        assert isinstance(parsed, model | Rejected)
        too_deep = isinstance(parsed, Rejected) and parsed.reason == "too_deep"
        assert too_deep == (nesting > MAX_DEPTH), parsed
    # However deep its other members, a request's own request_id is salvaged.
    salvaged = salvage_request_id(request)
    if request_member != "request_id":
        assert salvaged == CONTRACT_REQUEST["request_id"]
    else:
        assert salvaged == ("x" if (depth, leaf) == (0, '"x"') else None)
