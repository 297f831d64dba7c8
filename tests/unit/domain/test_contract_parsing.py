"""parse_consent_event / parse_send_request: the wire rules of CONTRACT.md sections 2-4.

A record we cannot use is a `Rejected(reason, detail)` value, never an exception:
the handler routes it to the DLQ and the consumer goes on."""

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from shared.contract.decisions import Decision, DispatchDecision, Reason
from shared.contract.event_parsing import parse_consent_event
from shared.contract.events import ConsentEvent, EventType
from shared.contract.purposes import Purpose
from shared.contract.requests import SendRequest, parse_send_request, salvage_request_id
from shared.rejection import Rejected
from tests.support.contract_examples import CONTRACT_DECISION, CONTRACT_GRANT, CONTRACT_REQUEST

# More records in the contract's shapes, beside its own examples.
OPT_OUT: dict[str, Any] = {
    "event_id": "wamid.HBgLNzkxNjEyMzQ1NjcVAgASGBQzQTk",
    "type": "OptedOut",
    "subject": "79161234567",
    "occurred_at": "2026-11-27T11:00:00+03:00",
    "source": "whatsapp_reply",
    "evidence": {"message_id": "wamid.HBg", "text": "СТОП", "keyword": "стоп", "language": "ru"},
}
REVOCATION: dict[str, Any] = {
    "event_id": "rev-1",
    "type": "ConsentRevoked",
    "subject": "+79161234567",
    "occurred_at": "2026-11-27T12:00:00Z",
    "source": "crm",
    "purposes": ["event_reminder"],
}


def raw(body: dict[str, Any], **changes: Any) -> bytes:
    return orjson.dumps({**body, **changes})


def without(body: dict[str, Any], *fields: str) -> bytes:
    return orjson.dumps({k: v for k, v in body.items() if k not in fields})


def event(data: bytes | None) -> ConsentEvent:
    parsed = parse_consent_event(data)
    assert isinstance(parsed, ConsentEvent), parsed
    return parsed


def rejection(parsed: object) -> str:
    assert isinstance(parsed, Rejected), parsed
    assert parsed.detail
    return parsed.reason


# ---------------------------------------------------------------- ConsentEvent: accepted


def test_contract_example_grant_is_accepted_as_is() -> None:
    parsed = event(raw(CONTRACT_GRANT))

    assert parsed.type is EventType.CONSENT_GRANTED
    assert parsed.event_id == CONTRACT_GRANT["event_id"]
    assert parsed.subject == "+79161234567"
    assert parsed.occurred_at == datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert parsed.purposes == (Purpose.EVENT_REMINDER, Purpose.REGISTRATION_CONFIRMATION)
    assert parsed.evidence == CONTRACT_GRANT["evidence"]
    assert parsed.expires_at is None


@pytest.mark.parametrize(
    "source",
    ["event_registration", "notification_subscription", "website_form", "explicit_confirmation"],
)
def test_grant_is_accepted_from_every_clause_2_2_source(source: str) -> None:
    assert event(raw(CONTRACT_GRANT, source=source)).source == source


def test_grant_with_expiry_keeps_it() -> None:
    parsed = event(raw(CONTRACT_GRANT, expires_at="2026-12-31T23:59:59+03:00"))

    assert parsed.expires_at == datetime(2026, 12, 31, 20, 59, 59, tzinfo=UTC)


def test_opt_out_reply_is_accepted_with_its_whatsapp_evidence() -> None:
    parsed = event(raw(OPT_OUT))

    assert parsed.type is EventType.OPTED_OUT
    assert parsed.occurred_at == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    assert parsed.evidence is not None
    assert parsed.evidence["keyword"] == "стоп"


def test_opt_in_reply_is_accepted() -> None:
    assert event(raw(OPT_OUT, type="OptedIn")).type is EventType.OPTED_IN


@pytest.mark.parametrize("source", ["erasure_api", "erasure_cli"])
def test_an_erasure_request_is_accepted_from_the_api_and_the_command(source: str) -> None:
    parsed = event(
        raw(OPT_OUT, type="ErasureRequested", source=source, purposes=["event_reminder"])
    )

    assert parsed.type is EventType.ERASURE_REQUESTED
    assert parsed.purposes is None  # ignored: it ends everything


def test_revocation_accepts_any_non_empty_source_and_listed_purposes() -> None:
    parsed = event(raw(REVOCATION, source="operator:alice"))

    assert parsed.source == "operator:alice"
    assert parsed.purposes == (Purpose.EVENT_REMINDER,)


def test_revocation_without_purposes_means_all() -> None:
    assert event(without(REVOCATION, "purposes")).purposes is None


def test_unknown_extra_fields_are_ignored() -> None:
    assert event(raw(CONTRACT_GRANT, trace_id="abc")).event_id == CONTRACT_GRANT["event_id"]


@pytest.mark.parametrize(
    ("wa_id", "e164"),
    [
        ("79161234567", "+79161234567"),
        ("447911123456", "+447911123456"),
        ("14155552671", "+14155552671"),
        ("+79161234567", "+79161234567"),
    ],
)
def test_subject_as_wa_id_digits_is_normalised_to_e164(wa_id: str, e164: str) -> None:
    assert event(raw(CONTRACT_GRANT, subject=wa_id)).subject == e164


@pytest.mark.parametrize("length", [1, 128])
def test_event_id_of_1_to_128_chars_is_accepted(length: int) -> None:
    assert event(raw(CONTRACT_GRANT, event_id="e" * length)).event_id == "e" * length


# ---------------------------------------------------------------- ConsentEvent: rejected


@pytest.mark.parametrize(
    "data",
    [None, b"", b"not json", b'{"event_id": ', b"\xff\xfe"],
    ids=["tombstone", "empty", "text", "truncated", "not-utf8"],
)
def test_value_that_is_not_json_is_rejected_as_invalid_json(data: bytes | None) -> None:
    assert rejection(parse_consent_event(data)) == "invalid_json"


@pytest.mark.parametrize("data", [b"[]", b'"OptedOut"', b"42", b"null"])
def test_json_that_is_not_an_object_is_rejected_as_invalid_schema(data: bytes) -> None:
    assert rejection(parse_consent_event(data)) == "invalid_schema"


@pytest.mark.parametrize(
    "data",
    [
        raw(CONTRACT_GRANT, evidence="R-1042"),
        raw(CONTRACT_GRANT, purposes="event_reminder"),
        without(CONTRACT_GRANT, "source"),
    ],
    ids=["evidence-not-object", "purposes-not-list", "source-missing"],
)
def test_wrong_shape_is_rejected_as_invalid_schema(data: bytes) -> None:
    assert rejection(parse_consent_event(data)) == "invalid_schema"


@pytest.mark.parametrize(
    "data",
    [
        raw(CONTRACT_GRANT, type="ConsentUpdated"),
        raw(CONTRACT_GRANT, type="consentgranted"),
        raw(CONTRACT_GRANT, type=None),
        raw(CONTRACT_GRANT, type=1),
        without(CONTRACT_GRANT, "type"),
    ],
    ids=["unknown", "wrong-case", "null", "number", "missing"],
)
def test_unknown_type_is_rejected(data: bytes) -> None:
    assert rejection(parse_consent_event(data)) == "unknown_type"


@pytest.mark.parametrize("kind", [["OptedOut"], {"name": "OptedOut"}], ids=["array", "object"])
def test_type_that_is_an_array_or_object_is_rejected_not_raised(kind: object) -> None:
    assert rejection(parse_consent_event(raw(OPT_OUT, type=kind))) == "unknown_type"


@pytest.mark.parametrize(
    "subject",
    ["12345", "+7 916 123-45-67", "8 (916) 123-45-67", "+10000000000", "abc", "", 79161234567],
    ids=["too-short", "spaces", "national", "not-a-valid-number", "letters", "empty", "number"],
)
def test_subject_that_is_not_a_phone_number_is_rejected_as_invalid_phone(subject: object) -> None:
    assert rejection(parse_consent_event(raw(CONTRACT_GRANT, subject=subject))) == "invalid_phone"


def test_missing_subject_is_rejected_as_invalid_phone() -> None:
    assert rejection(parse_consent_event(without(CONTRACT_GRANT, "subject"))) == "invalid_phone"


@pytest.mark.parametrize(
    "data",
    [
        raw(CONTRACT_GRANT, source="whatsapp_reply"),
        raw(CONTRACT_GRANT, source="purchased_list"),
        raw(OPT_OUT, source="website_form"),
        raw(OPT_OUT, type="OptedIn", source="crm"),
        raw(OPT_OUT, type="ErasureRequested", source="whatsapp_reply"),
    ],
    ids=[
        "grant-from-reply",
        "grant-from-list",
        "opt-out-from-form",
        "opt-in-from-crm",
        "erasure-from-reply",
    ],
)
def test_source_outside_the_types_allowed_list_is_rejected_as_invalid_source(data: bytes) -> None:
    assert rejection(parse_consent_event(data)) == "invalid_source"


@pytest.mark.parametrize(
    "purposes",
    [["marketing"], ["event_reminder", "promotions"], ["opt_out_confirmation"], [1]],
    ids=["marketing", "one-of-two", "technical-purpose", "number"],
)
def test_grant_of_a_purpose_outside_clause_3_2_is_rejected(purposes: list[object]) -> None:
    parsed = parse_consent_event(raw(CONTRACT_GRANT, purposes=purposes))

    assert rejection(parsed) == "purpose_not_permitted"


@pytest.mark.parametrize("purpose", [{}, ["event_reminder"]], ids=["object", "array"])
def test_grant_of_a_non_string_purpose_is_rejected_not_raised(purpose: object) -> None:
    parsed = parse_consent_event(raw(CONTRACT_GRANT, purposes=[purpose]))

    assert rejection(parsed) in {"purpose_not_permitted", "invalid_schema"}


@pytest.mark.parametrize(
    ("kind", "purposes"),
    [("OptedOut", ["marketing"]), ("OptedOut", "all"), ("OptedIn", ["promotions"])],
    ids=["opt-out-unknown-purpose", "opt-out-purposes-not-list", "opt-in-unknown-purpose"],
)
def test_purposes_on_an_opt_out_or_opt_in_are_ignored(kind: str, purposes: object) -> None:
    parsed = parse_consent_event(raw(OPT_OUT, type=kind, purposes=purposes))

    assert isinstance(parsed, ConsentEvent), parsed
    assert parsed.type == kind


def test_revocation_naming_an_unknown_purpose_still_revokes_the_known_ones() -> None:
    parsed = parse_consent_event(raw(REVOCATION, purposes=["marketing", "event_reminder"]))

    assert isinstance(parsed, ConsentEvent), parsed
    assert Purpose.EVENT_REMINDER in (parsed.purposes or ())


@pytest.mark.parametrize(
    "data",
    [
        without(CONTRACT_GRANT, "purposes"),
        raw(CONTRACT_GRANT, purposes=None),
        raw(CONTRACT_GRANT, purposes=[]),
        raw(REVOCATION, purposes=[]),
    ],
    ids=["grant-absent", "grant-null", "grant-empty", "revocation-empty"],
)
def test_grant_without_purposes_or_revocation_of_an_empty_list_is_rejected(data: bytes) -> None:
    assert rejection(parse_consent_event(data)) == "missing_purposes"


@pytest.mark.parametrize(
    "data",
    [
        without(CONTRACT_GRANT, "evidence"),
        raw(CONTRACT_GRANT, evidence=None),
        raw(CONTRACT_GRANT, evidence={}),
    ],
    ids=["absent", "null", "empty"],
)
def test_grant_without_evidence_is_rejected_as_missing_evidence(data: bytes) -> None:
    assert rejection(parse_consent_event(data)) == "missing_evidence"


@pytest.mark.parametrize(
    "data",
    [
        raw(CONTRACT_GRANT, occurred_at="2026-11-27T10:00:00"),
        raw(CONTRACT_GRANT, occurred_at="yesterday"),
        raw(CONTRACT_GRANT, occurred_at=None),
        without(CONTRACT_GRANT, "occurred_at"),
        raw(CONTRACT_GRANT, expires_at="2026-12-31T23:59:59"),
    ],
    ids=["no-offset", "not-a-date", "null", "missing", "expiry-no-offset"],
)
def test_timestamp_without_an_offset_is_rejected_as_invalid_timestamp(data: bytes) -> None:
    assert rejection(parse_consent_event(data)) == "invalid_timestamp"


@pytest.mark.parametrize(
    "text",
    [
        "1795773600",  # pydantic alone reads digits as Unix time
        "2026-11-27T10:00Z",  # no seconds
        "2026-11-27T10:00:00,5Z",  # comma fraction
        "2026-11-27T10:00:00+0300",  # offset without a colon
        "2026-11-27",  # a date
        "2026-11-27T10:00:00.Z",
        "0001-01-01T00:00:00+01:00",  # year 0 in UTC: no datetime, no timestamptz
        "9999-12-31T23:30:00-01:00",  # year 10000 in UTC
    ],
)
def test_timestamp_that_is_not_rfc_3339_is_rejected_as_invalid_timestamp(text: str) -> None:
    assert rejection(parse_consent_event(raw(CONTRACT_GRANT, occurred_at=text))) == (
        "invalid_timestamp"
    )
    assert rejection(parse_consent_event(raw(CONTRACT_GRANT, expires_at=text))) == (
        "invalid_timestamp"
    )
    assert rejection(parse_send_request(raw(CONTRACT_REQUEST, requested_at=text))) == (
        "invalid_schema"
    )


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-11-27T10:00:00Z", datetime(2026, 11, 27, 10, tzinfo=UTC)),
        ("2026-11-27t10:00:00z", datetime(2026, 11, 27, 10, tzinfo=UTC)),
        ("2026-11-27 13:00:00+03:00", datetime(2026, 11, 27, 10, tzinfo=UTC)),
        ("2026-11-27T10:00:00.123456789-00:00", datetime(2026, 11, 27, 10, 0, 0, 123456, UTC)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:30:00+01:00", datetime(9999, 12, 31, 22, 30, tzinfo=UTC)),
    ],
)
def test_rfc_3339_timestamps_in_all_their_forms_are_accepted(text: str, moment: datetime) -> None:
    assert event(raw(CONTRACT_GRANT, occurred_at=text)).occurred_at == moment


def test_occurred_at_as_a_number_is_rejected_as_invalid_timestamp() -> None:
    parsed = parse_consent_event(raw(CONTRACT_GRANT, occurred_at=1_795_773_600))

    assert rejection(parsed) == "invalid_timestamp"


@pytest.mark.parametrize(
    "data",
    [
        raw(CONTRACT_GRANT, event_id=""),
        raw(CONTRACT_GRANT, event_id="e" * 129),
        raw(CONTRACT_GRANT, event_id=None),
        raw(CONTRACT_GRANT, event_id=42),
        without(CONTRACT_GRANT, "event_id"),
    ],
    ids=["empty", "129-chars", "null", "number", "missing"],
)
def test_event_id_outside_1_to_128_chars_is_rejected_as_invalid_event_id(data: bytes) -> None:
    assert rejection(parse_consent_event(data)) == "invalid_event_id"


# ---------------------------------------------------------------- ConsentEvent: clamping


def test_occurred_at_later_than_the_log_time_is_clamped_to_it() -> None:
    ahead = event(raw(OPT_OUT, occurred_at="2026-11-27T10:05:00Z"))
    log_time = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)

    clamped = ahead.clamped_to(log_time)

    assert clamped.occurred_at == log_time
    assert clamped.model_copy(update={"occurred_at": ahead.occurred_at}) == ahead


@pytest.mark.parametrize("behind", [timedelta(0), timedelta(seconds=1), timedelta(days=3)])
def test_occurred_at_not_later_than_the_log_time_is_kept(behind: timedelta) -> None:
    parsed = event(raw(OPT_OUT))

    assert parsed.clamped_to(parsed.occurred_at + behind) == parsed


def test_clamping_compares_instants_not_wall_clocks() -> None:
    parsed = event(raw(OPT_OUT))  # 11:00+03:00, i.e. 08:00Z
    log_time = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

    assert parsed.clamped_to(log_time).occurred_at == parsed.occurred_at


# ---------------------------------------------------------------- SendRequest


def send_request(data: bytes) -> SendRequest:
    parsed = parse_send_request(data)
    assert isinstance(parsed, SendRequest), parsed
    return parsed


def test_contract_example_request_is_accepted_as_is() -> None:
    parsed = send_request(raw(CONTRACT_REQUEST))

    assert parsed.request_id == "c1e4..."
    assert parsed.recipient == "+79161234567"
    assert parsed.purpose == "event_reminder"
    assert parsed.message == CONTRACT_REQUEST["message"]
    assert parsed.requested_at == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    assert parsed.opt_out_event_id is None


def test_request_recipient_as_wa_id_digits_is_normalised_to_e164() -> None:
    assert send_request(raw(CONTRACT_REQUEST, recipient="447911123456")).recipient == (
        "+447911123456"
    )


def test_request_for_an_unknown_purpose_parses_so_that_it_gets_a_decision() -> None:
    assert send_request(raw(CONTRACT_REQUEST, purpose="marketing")).purpose == "marketing"


def test_opt_out_confirmation_request_carries_its_opt_out_event_id() -> None:
    parsed = send_request(
        raw(CONTRACT_REQUEST, purpose="opt_out_confirmation", opt_out_event_id="wamid.1")
    )

    assert parsed.opt_out_event_id == "wamid.1"


@pytest.mark.parametrize(
    "message",
    [
        {"type": "template", "template": {"name": "reminder", "language": {"code": "ru"}}},
        {"type": "interactive", "interactive": {"type": "button", "body": {"text": "?"}}},
    ],
    ids=["template", "interactive"],
)
def test_any_cloud_api_message_type_is_accepted(message: dict[str, Any]) -> None:
    assert send_request(raw(CONTRACT_REQUEST, message=message)).message == message


@pytest.mark.parametrize(
    "message",
    [
        {"text": {"body": "hi"}},
        {"type": "", "text": {"body": "hi"}},
        {"type": "text"},
        {"type": "text", "text": "hi"},
        {"type": "text", "text": {"body": "hi"}, "to": "79161234567"},
        {"type": "text", "text": {"body": "hi"}, "messaging_product": "whatsapp"},
    ],
    ids=["no-type", "empty-type", "no-body", "body-not-object", "has-to", "has-product"],
)
def test_message_that_is_not_a_cloud_api_message_is_rejected(message: dict[str, Any]) -> None:
    assert rejection(parse_send_request(raw(CONTRACT_REQUEST, message=message))) == (
        "invalid_message"
    )


@pytest.mark.parametrize("recipient", ["12345", "+7 916 123-45-67", "+10000000000", None])
def test_request_to_an_invalid_phone_number_is_rejected(recipient: object) -> None:
    parsed = parse_send_request(raw(CONTRACT_REQUEST, recipient=recipient))

    assert rejection(parsed) == "invalid_phone"


@pytest.mark.parametrize(
    "data",
    [
        raw(CONTRACT_REQUEST, request_id=""),
        raw(CONTRACT_REQUEST, request_id="r" * 129),
        raw(CONTRACT_REQUEST, request_id=7),
        without(CONTRACT_REQUEST, "request_id"),
    ],
    ids=["empty", "129-chars", "number", "missing"],
)
def test_request_id_outside_1_to_128_chars_is_rejected(data: bytes) -> None:
    assert rejection(parse_send_request(data)) == "invalid_request_id"


@pytest.mark.parametrize(
    "data",
    [
        None,
        b"{",
        b"[]",
        raw(CONTRACT_REQUEST, purpose=""),
        without(CONTRACT_REQUEST, "message"),
        raw(CONTRACT_REQUEST, requested_at="2026-11-27T09:00:00"),
    ],
    ids=["tombstone", "not-json", "not-object", "empty-purpose", "no-message", "naive-time"],
)
def test_unusable_request_is_a_rejection_not_an_exception(data: bytes | None) -> None:
    assert rejection(parse_send_request(data)) in {"invalid_json", "invalid_schema"}


@pytest.mark.parametrize(
    "data",
    [
        raw(CONTRACT_REQUEST, recipient="12345"),
        raw(CONTRACT_REQUEST, message={"type": "text"}),
        raw(CONTRACT_REQUEST, purpose=""),
    ],
    ids=["bad-phone", "bad-message", "no-purpose"],
)
def test_unusable_request_with_a_valid_request_id_is_salvaged(data: bytes) -> None:
    assert isinstance(parse_send_request(data), Rejected)
    assert salvage_request_id(data) == "c1e4..."


@pytest.mark.parametrize(
    "data",
    [
        None,
        b"not json",
        b'["c1e4..."]',
        raw(CONTRACT_REQUEST, request_id=""),
        raw(CONTRACT_REQUEST, request_id="r" * 129),
        raw(CONTRACT_REQUEST, request_id=7),
        without(CONTRACT_REQUEST, "request_id"),
    ],
    ids=["tombstone", "not-json", "not-object", "empty", "129-chars", "number", "missing"],
)
def test_request_without_a_valid_request_id_cannot_be_salvaged(data: bytes | None) -> None:
    assert salvage_request_id(data) is None


def test_salvage_accepts_a_128_char_request_id() -> None:
    assert salvage_request_id(raw(CONTRACT_REQUEST, request_id="r" * 128)) == "r" * 128


# ---------------------------------------------------------------- DispatchDecision


def test_contract_example_decision_round_trips_with_its_field_names() -> None:
    decision = DispatchDecision.model_validate_json(orjson.dumps(CONTRACT_DECISION))

    assert decision.decision is Decision.DISPATCHED
    assert decision.reason is Reason.CONSENTED
    dumped = orjson.loads(decision.model_dump_json())
    assert {k: dumped[k] for k in CONTRACT_DECISION if k != "decided_at"} == {
        k: v for k, v in CONTRACT_DECISION.items() if k != "decided_at"
    }
    assert DispatchDecision.model_validate_json(decision.model_dump_json()) == decision


def test_every_contract_reason_has_its_wire_name() -> None:
    assert {r.value for r in Reason} == {
        "consented",
        "opt_out_confirmation",
        "no_consent",
        "opted_out",
        "purpose_not_consented",
        "consent_expired",
        "purpose_not_permitted",
        "confirmation_not_allowed",
        "frequency_capped",
        "invalid_request",
        "quiet_hours",
        "deliver_by_passed",
        "platform_limit",
        "unreachable",
    }
