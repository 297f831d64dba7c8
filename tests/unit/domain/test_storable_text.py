"""U+0000 (NUL): valid in JSON, refused by PostgreSQL's text and jsonb. A record
that carried one to the database would fail its batch on every retry."""

from typing import Any

import orjson
from hypothesis import assume, given
from hypothesis import strategies as st

from shared.contract.event_parsing import parse_consent_event
from shared.contract.events import ConsentEvent
from shared.contract.requests import parse_send_request, salvage_request_id
from shared.contract.storable import REPLACEMENT, holds_nul, without_nul
from shared.rejection import Rejected
from tests.support.contract_examples import CONTRACT_GRANT, CONTRACT_REQUEST

OPT_OUT: dict[str, Any] = {
    "event_id": "wamid.1",
    "type": "OptedOut",
    "subject": "+79161234567",
    "occurred_at": "2026-11-27T11:00:00Z",
    "source": "whatsapp_reply",
    "evidence": {"message_id": "wamid.1", "text": "STOP\x00", "keyword": "STOP"},
}


def reason(parsed: object) -> str:
    assert isinstance(parsed, Rejected), parsed
    return parsed.reason


def test_an_opt_out_whose_text_holds_a_nul_counts_with_the_nul_replaced() -> None:
    parsed = parse_consent_event(orjson.dumps(OPT_OUT))
    assert isinstance(parsed, ConsentEvent), parsed
    assert parsed.evidence == {"message_id": "wamid.1", "text": "STOP\ufffd", "keyword": "STOP"}
    assert "\\u0000" not in parsed.model_dump_json()


def test_a_nul_in_an_evidence_key_or_nested_value_is_replaced() -> None:
    evidence = {"form\x00": {"answers": ["yes\x00", 1, None]}}
    parsed = parse_consent_event(orjson.dumps({**CONTRACT_GRANT, "evidence": evidence}))
    assert isinstance(parsed, ConsentEvent), parsed
    assert parsed.evidence == {"form\ufffd": {"answers": ["yes\ufffd", 1, None]}}


def test_an_event_id_with_a_nul_is_refused_as_invalid_event_id() -> None:
    data = orjson.dumps({**OPT_OUT, "event_id": "ev\x001"})
    assert reason(parse_consent_event(data)) == "invalid_event_id"


def test_a_source_with_a_nul_is_refused() -> None:
    data = orjson.dumps({**OPT_OUT, "type": "ConsentRevoked", "source": "crm\x00"})
    assert reason(parse_consent_event(data)) == "invalid_schema"


def test_a_request_id_with_a_nul_is_refused_and_not_salvaged() -> None:
    data = orjson.dumps({**CONTRACT_REQUEST, "request_id": "r\x001"})
    assert reason(parse_send_request(data)) == "invalid_request_id"
    assert salvage_request_id(data) is None


def test_a_message_holding_a_nul_is_an_invalid_message_whose_id_is_salvaged() -> None:
    message = {"type": "text", "text": {"body": "a\x00b"}}
    data = orjson.dumps({**CONTRACT_REQUEST, "message": message})
    assert reason(parse_send_request(data)) == "invalid_message"
    assert salvage_request_id(data) == CONTRACT_REQUEST["request_id"]


def test_a_purpose_or_opt_out_event_id_with_a_nul_is_refused() -> None:
    for field in ("purpose", "opt_out_event_id"):
        data = orjson.dumps({**CONTRACT_REQUEST, field: "event_reminder\x00"})
        assert reason(parse_send_request(data)) == "invalid_schema", field


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_without_nul_replaces_every_nul_and_nothing_else(value: Any) -> None:
    encoded = orjson.dumps(value)
    assume(REPLACEMENT.encode() not in encoded)  # else two keys might become one
    cleaned = without_nul(value)
    assert orjson.dumps(cleaned) == encoded.replace(b"\\u0000", REPLACEMENT.encode())
    assert not holds_nul(cleaned)
    if not holds_nul(value):
        assert cleaned is value
