"""The audit reads a refused request as the dispatcher decided it: a request too deep
even to decode still owes its one `invalid_request` under its request_id, and the
replay goes on (it read the value again with orjson.loads, which raised)."""

import orjson
from aiokafka import ConsumerRecord

from services.audit.history import History
from services.audit.replay import ReplayScope, Topics, _Collector
from tests.support.contract_examples import CONTRACT_REQUEST
from tests.support.signing import TRUST

TOPICS = Topics()


def record(value: bytes) -> ConsumerRecord:
    return ConsumerRecord(
        TOPICS.requests, 0, 7, 1_795_770_000_000, 1, b"+79161234567", value, None, 0, 0, []
    )


def test_a_request_too_deep_to_decode_is_owed_its_invalid_request_decision() -> None:
    deep = orjson.dumps({**CONTRACT_REQUEST, "message": "\x01"}).replace(
        b'"\\u0001"', b'{"a":' * 2000 + b"1" + b"}" * 2000
    )
    history = History()

    _Collector(TOPICS, ReplayScope(), history, TRUST).request(record(deep))

    [owed] = history.requests
    assert owed.request_id == CONTRACT_REQUEST["request_id"]
    assert owed.rejection == "too_deep"
    assert owed.purpose is None
    assert owed.recipient == "+79161234567"


def test_a_refused_object_keeps_its_purpose() -> None:
    value = orjson.dumps({**CONTRACT_REQUEST, "recipient": "12345"})
    history = History()

    _Collector(TOPICS, ReplayScope(), history, TRUST).request(record(value))

    [owed] = history.requests
    assert (owed.rejection, owed.purpose) == ("invalid_phone", CONTRACT_REQUEST["purpose"])
