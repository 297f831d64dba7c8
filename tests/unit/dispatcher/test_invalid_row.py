"""A refused request with a usable request_id gets its `invalid_request` decision,
whatever its value holds: too deep even to decode, not JSON, not an object."""

from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import ConsumerRecord

from services.dispatcher.gate.decide import invalid_row, parse_batch
from shared.contract.decisions import DispatchDecision, Reason
from shared.rejection import Rejected
from tests.support.contract_examples import CONTRACT_REQUEST

NOW = datetime(2026, 11, 27, 10, tzinfo=UTC)
DEEP_MESSAGE = orjson.dumps({**CONTRACT_REQUEST, "message": "\x01"}).replace(
    b'"\\u0001"', b"[" * 2000 + b"]" * 2000
)


def record(value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord(
        "messages.requests.v1", 0, 7, 0, 0, b"+79161234567", value, None, 0, 0, []
    )


def test_a_request_too_deep_to_decode_is_decided_invalid_under_its_request_id() -> None:
    [(_, rejected, request_id)] = parse_batch([record(DEEP_MESSAGE)])
    assert isinstance(rejected, Rejected)
    assert rejected.reason == "too_deep"
    assert request_id == CONTRACT_REQUEST["request_id"]

    row = invalid_row(record(DEEP_MESSAGE), request_id, rejected, NOW, {"0": 1})

    decision = DispatchDecision.model_validate_json(row.decision_json)
    assert decision.reason is Reason.INVALID_REQUEST
    assert decision.request_id == CONTRACT_REQUEST["request_id"]
    assert decision.purpose is None  # the value does not decode: nothing read from it
    assert decision.detail is not None
    assert decision.detail.startswith("too_deep: message nests 2000 levels")


@pytest.mark.parametrize(
    "value",
    [DEEP_MESSAGE, b"not json", b"\xff", b'["event_reminder"]', b'"x"', b"", None],
    ids=["too-deep", "not-json", "not-utf8", "array", "string", "empty", "tombstone"],
)
def test_no_refused_value_makes_the_invalid_row_raise(value: bytes | None) -> None:
    rejected = Rejected(reason="invalid_json", detail="whatever it was")
    row = invalid_row(record(value), "r1", rejected, NOW, {})
    assert row.purpose is None
    assert row.reason == Reason.INVALID_REQUEST.value


def test_the_purpose_of_a_refused_object_is_kept_for_information() -> None:
    value = orjson.dumps({**CONTRACT_REQUEST, "recipient": "12345", "purpose": "ad\x00"})
    row = invalid_row(record(value), "r1", Rejected(reason="invalid_phone", detail="x"), NOW, {})
    assert row.purpose == "ad\ufffd"
