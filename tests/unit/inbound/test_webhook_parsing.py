"""The webhook body parser: every message of every change, and only documented
rejections for anything else (a fuzz run with hypothesis)."""

import copy
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.contract.webhook import (
    WebhookBody,
    inbound_replies,
    malformed_messages,
    parse_webhook,
)
from shared.rejection import Rejected
from tests.support.webhooks import text_webhook

DOCUMENTED_REASONS = {"invalid_json", "invalid_schema", "not_a_webhook", "too_deep", "too_large"}


def _button(payload: str, title: str) -> dict[str, Any]:
    return {
        "from": "79161234567",
        "id": "wamid.B",
        "timestamp": "1795773600",
        "type": "button",
        "button": {"payload": payload, "text": title},
    }


def _interactive(kind: str, reply_id: str, title: str) -> dict[str, Any]:
    return {
        "from": "79161234567",
        "id": f"wamid.{kind}",
        "timestamp": "1795773600",
        "type": "interactive",
        "interactive": {"type": kind, kind: {"id": reply_id, "title": title}},
    }


def test_every_message_of_every_change_is_read() -> None:
    body = text_webhook("79161234567", "STOP", message_id="wamid.A")
    value = body["entry"][0]["changes"][0]["value"]
    value["messages"] += [
        _button("UNSUBSCRIBE_PAYLOAD", "Stop promotions"),
        _interactive("button_reply", "opt-out", "Отписаться"),
        _interactive("list_reply", "row-1", "START"),
    ]
    body["entry"].append(copy.deepcopy(body["entry"][0]))
    parsed = parse_webhook(orjson.dumps(body))
    assert isinstance(parsed, WebhookBody)
    replies = inbound_replies(parsed)
    assert len(replies) == 8
    assert replies[0].texts == ("STOP",)
    assert replies[0].sent_at == datetime.fromtimestamp(int(value["messages"][0]["timestamp"]), UTC)
    assert replies[1].texts == ("UNSUBSCRIBE_PAYLOAD", "Stop promotions")
    assert replies[2].texts == ("opt-out", "Отписаться")
    assert replies[3].texts == ("row-1", "START")


def test_status_webhooks_and_other_fields_yield_nothing_without_error() -> None:
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "statuses": [{"id": "wamid.X", "status": "read"}],
                        },
                    },
                    {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}},
                ],
            }
        ],
    }
    parsed = parse_webhook(orjson.dumps(body))
    assert isinstance(parsed, WebhookBody)
    assert inbound_replies(parsed) == []


def test_a_business_scoped_sender_without_a_phone_has_no_wa_id() -> None:
    body = text_webhook("79161234567", "STOP")
    value = body["entry"][0]["changes"][0]["value"]
    message = value["messages"][0]
    del message["from"]
    message["from_user_id"] = "US.13491208655302741918"
    value["contacts"] = [{"user_id": "US.13491208655302741918", "profile": {"name": "X"}}]
    parsed = parse_webhook(orjson.dumps(body))
    assert isinstance(parsed, WebhookBody)
    [reply] = inbound_replies(parsed)
    assert reply.wa_id is None
    assert reply.user_id == "US.13491208655302741918"


def test_a_malformed_message_is_left_out_and_named_and_its_neighbours_are_read() -> None:
    body = text_webhook("79161234567", "STOP", message_id="wamid.A")
    value = body["entry"][0]["changes"][0]["value"]
    value["messages"] = [{"type": "text"}, *value["messages"], 42]
    parsed = parse_webhook(orjson.dumps(body))
    assert isinstance(parsed, WebhookBody)
    assert [(r.message_id, r.texts) for r in inbound_replies(parsed)] == [("wamid.A", ("STOP",))]
    assert malformed_messages(parsed) == [
        "messages.0.id: Field required",
        "messages.2: Input should be a valid dictionary or instance of Message",
    ]


def test_numbers_for_the_sender_and_the_timestamp_are_read_as_their_digits() -> None:
    body = text_webhook("79161234567", "STOP")
    value = body["entry"][0]["changes"][0]["value"]
    value["messages"][0] |= {"from": 79161234567, "timestamp": 1795773600}
    value["contacts"] = None
    body["entry"][0]["changes"].append({"field": "messages", "value": None})
    parsed = parse_webhook(orjson.dumps(body))
    assert isinstance(parsed, WebhookBody)
    [reply] = inbound_replies(parsed)
    assert (reply.wa_id, reply.sent_at) == ("79161234567", datetime.fromtimestamp(1795773600, UTC))
    assert malformed_messages(parsed) == []


def test_bodies_that_are_not_webhooks_are_rejected_with_a_reason() -> None:
    not_utf8 = parse_webhook(b"\xff\xfe")
    assert isinstance(not_utf8, Rejected)
    assert not_utf8.reason == "invalid_json"
    for raw in (
        b"[]",
        b"{}",
        b'{"entry": 5}',
    ):
        result = parse_webhook(raw)
        assert isinstance(result, Rejected), raw
        assert result.reason in DOCUMENTED_REASONS


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def _mutate(body: Any, path: list[int], replacement: Any) -> Any:
    """Replace the node at a pseudo-random path with an arbitrary JSON value."""
    if not path or not isinstance(body, dict | list) or not body:
        return replacement
    keys = list(body.keys()) if isinstance(body, dict) else list(range(len(body)))
    key = keys[path[0] % len(keys)]
    clone = copy.copy(body)
    clone[key] = _mutate(body[key], path[1:], replacement)
    return clone


@settings(max_examples=400, deadline=200)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_give_a_body_or_a_documented_rejection(raw: bytes) -> None:
    result = parse_webhook(raw)
    if isinstance(result, Rejected):
        assert result.reason in DOCUMENTED_REASONS
    else:
        inbound_replies(result)


@settings(max_examples=400, deadline=200)
@given(st.lists(st.integers(min_value=0, max_value=50), max_size=8), json_values)
def test_mutated_webhooks_give_a_body_or_a_documented_rejection(
    path: list[int], replacement: Any
) -> None:
    body = _mutate(text_webhook("79161234567", "STOP"), path, replacement)
    result = parse_webhook(orjson.dumps(body))
    if isinstance(result, Rejected):
        assert result.reason in DOCUMENTED_REASONS
    else:
        for reply in inbound_replies(result):
            assert isinstance(reply.texts, tuple)
        assert all(isinstance(why, str) for why in malformed_messages(result))
