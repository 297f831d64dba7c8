"""What the sender admits: a usable record that is exactly what the gate dispatched
(request_id, recipient and body); anything else is refused with the reason."""

from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord

from services.dispatcher.sender.admission import (
    Admitted,
    GateDecision,
    Refused,
    admit,
    lookup_ids,
    not_dispatched,
    same_json,
)

PHONE = "+79161234567"
BODY = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "79161234567",
    "type": "text",
    "text": {"body": "Reminder: the workshop starts at 10:00"},
}
DISPATCHED = GateDecision("dispatched", "consented", PHONE, BODY)


def record(
    value: bytes | None = None, key: bytes | None = PHONE.encode(), request_id: bytes | None = b"r1"
) -> ConsumerRecord:
    headers = [("request_id", request_id)] if request_id is not None else []
    value = orjson.dumps(BODY) if value is None else value
    return ConsumerRecord("messages.outbound.v1", 0, 7, 0, 0, key, value, None, 0, 0, headers)


# ---------------------------------------------------------------- given the gate's decision


@pytest.mark.parametrize(
    ("decision", "recipient", "body", "why"),
    [
        (DISPATCHED, PHONE, BODY, None),
        (None, PHONE, BODY, "recorded no decision"),
        (GateDecision("dropped", "opted_out", PHONE, None), PHONE, BODY, "is dropped (opted_out)"),
        (DISPATCHED, "+79169999999", BODY, "another recipient"),
        (DISPATCHED, None, BODY, "another recipient"),
        (DISPATCHED, PHONE, {**BODY, "text": {"body": "Pay now"}}, "another body"),
        (DISPATCHED, PHONE, {**BODY, "to": "79169999999"}, "another body"),
        (DISPATCHED, PHONE, {**BODY, "extra": 1}, "another body"),
        (GateDecision("dispatched", "consented", PHONE, None), PHONE, BODY, "another body"),
    ],
)
def test_only_the_dispatched_body_to_the_dispatched_recipient_passes(
    decision: GateDecision | None, recipient: str | None, body: dict[str, Any], why: str | None
) -> None:
    refused = not_dispatched(decision, recipient, body)
    if why is None:
        assert refused is None
    else:
        assert refused is not None
        assert why in refused


@pytest.mark.parametrize(
    ("stored", "read", "same"),
    [
        ({"a": 1, "b": [1, {"c": "x"}]}, {"b": [1, {"c": "x"}], "a": 1}, True),  # key order
        ({"a": 1}, {"a": 1.0}, True),
        ({"a": 1152921504606847000}, {"a": 1.152921504606847e18}, True),  # jsonb's print
        ({"a": 1}, {"a": True}, False),  # to Python's ==, True is 1
        ({"a": 0}, {"a": False}, False),
        ({"a": True}, {"a": True}, True),
        ({"a": None}, {"a": False}, False),
        ({"a": [1, 2]}, {"a": [2, 1]}, False),
        ({"a": [1, 2]}, {"a": [1, 2, 3]}, False),
        ({"a": "1"}, {"a": 1}, False),
        ({"a": "1.0"}, {"a": 1.0}, False),
        ({"a": {}}, {"a": []}, False),
        ({}, {"a": None}, False),
    ],
)
def test_bodies_are_compared_as_json_values(stored: Any, read: Any, same: bool) -> None:
    assert same_json(stored, read) is same
    assert same_json(read, stored) is same


def test_a_body_deeper_than_the_recursion_limit_is_compared() -> None:
    def nested(leaf: str) -> Any:
        value: Any = leaf
        for _ in range(5000):
            value = {"a": [value]}
        return value

    assert same_json(nested("x"), nested("x"))
    assert not same_json(nested("x"), nested("y"))


# ---------------------------------------------------------------- a record of the topic


def test_the_gates_record_is_admitted_with_its_request_id_and_recipient() -> None:
    r = record()
    assert admit(r, {"r1": DISPATCHED}) == Admitted(r, "r1", PHONE)


def test_a_respaced_and_reordered_body_is_the_same_body() -> None:
    respaced = b'{"text": {"body": "Reminder: the workshop starts at 10:00"}, "type": "text",'
    respaced += b' "to": "79161234567", "recipient_type": "individual",'
    respaced += b' "messaging_product": "whatsapp"}'
    assert isinstance(admit(record(respaced), {"r1": DISPATCHED}), Admitted)


@pytest.mark.parametrize(
    ("r", "reason", "outcome"),
    [
        (record(request_id=None), "missing_request_id", "invalid"),
        (record(request_id=b"r\x001"), "invalid_request_id", "invalid"),
        (record(b"not json"), "invalid_json", "invalid"),
        (record(b"[1]"), "invalid_schema", "invalid"),
        (record(request_id=b"r2"), "no_dispatch_decision", "not_dispatched"),
        (record(key=b"+79169999999"), "no_dispatch_decision", "not_dispatched"),
        (record(key=None), "no_dispatch_decision", "not_dispatched"),
        (
            record(orjson.dumps({**BODY, "to": "79169999999"})),
            "no_dispatch_decision",
            "not_dispatched",
        ),
    ],
)
def test_anything_else_is_refused_with_its_reason(
    r: ConsumerRecord, reason: str, outcome: str
) -> None:
    refused = admit(r, {"r1": DISPATCHED})
    assert isinstance(refused, Refused)
    assert (refused.record, refused.rejected.reason, refused.outcome) == (r, reason, outcome)


def test_only_request_ids_a_query_can_carry_are_looked_up() -> None:
    batch = [record(), record(request_id=b"r\x001"), record(request_id=None), record()]
    assert lookup_ids(batch) == ["r1"]
