"""Whatever a producer writes, a record the parsers accept can be stored, and one
they refuse has a documented reason: an accepted record that PostgreSQL or
asyncpg then refuses fails its batch on every retry and stops the consumer
(a NUL, a timestamp whose UTC instant is outside datetime's range, both once)."""

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings

from shared.contract.event_parsing import parse_consent_event
from shared.contract.events import ConsentEvent
from shared.contract.requests import SendRequest, parse_send_request, salvage_request_id
from shared.contract.storable import NUL, holds_nul
from shared.rejection import Rejected
from tests.support.wire_strategies import consent_event_records, send_request_records

# docs/contract.md section 4, per topic.
EVENT_REASONS = {
    "invalid_json",
    "invalid_schema",
    "unknown_type",
    "invalid_event_id",
    "invalid_phone",
    "invalid_timestamp",
    "invalid_source",
    "missing_purposes",
    "missing_evidence",
    "purpose_not_permitted",
    "too_deep",
    "too_large",
}
REQUEST_REASONS = {
    "invalid_json",
    "invalid_schema",
    "invalid_phone",
    "invalid_request_id",
    "invalid_message",
    "too_deep",
    "too_large",
}


def storable_moment(moment: datetime | None) -> None:
    if moment is not None:
        moment.astimezone(UTC)  # what asyncpg does with a timestamptz; raises out of range


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(consent_event_records())
def test_an_accepted_event_can_be_stored_and_a_refused_one_has_a_documented_reason(
    raw: bytes,
) -> None:
    parsed = parse_consent_event(raw)
    if isinstance(parsed, Rejected):
        assert parsed.reason in EVENT_REASONS, parsed
        return
    assert isinstance(parsed, ConsentEvent)
    assert not holds_nul([parsed.event_id, parsed.subject, parsed.source, parsed.evidence])
    assert "\\u0000" not in parsed.model_dump_json()
    storable_moment(parsed.occurred_at)
    storable_moment(parsed.expires_at)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(send_request_records())
def test_an_accepted_request_can_be_stored_and_a_refused_one_has_a_documented_reason(
    raw: bytes,
) -> None:
    parsed = parse_send_request(raw)
    salvaged = salvage_request_id(raw)
    if isinstance(parsed, Rejected):
        assert parsed.reason in REQUEST_REASONS, parsed
        assert salvaged is None or NUL not in salvaged  # its decision row is keyed by it
        return
    assert isinstance(parsed, SendRequest)
    assert salvaged == parsed.request_id
    texts = [parsed.request_id, parsed.recipient, parsed.purpose, parsed.opt_out_event_id]
    assert not holds_nul([t for t in texts if t is not None])
    assert not holds_nul(parsed.message)
    storable_moment(parsed.requested_at)
