"""Identifiers (phone numbers and WhatsApp user ids): their canonical form, the contract's
models that carry them, identity events' rules, and how a send is addressed to each."""

from typing import Any

import orjson
import pytest

from services.dispatcher.gate.cloud_api_body import cloud_api_body
from shared.contract.event_parsing import parse_consent_event, validate_consent_event
from shared.contract.events import ConsentEvent, EventType
from shared.contract.requests import SendRequest, parse_send_request
from shared.identifiers import (
    IdentifierKind,
    InvalidIdentifierError,
    identifier_kind,
    is_bsuid,
    normalize_identifier,
)
from shared.phone import InvalidPhoneNumberError
from shared.rejection import Rejected
from tests.support.contract_examples import CONTRACT_GRANT, CONTRACT_REQUEST

PHONE = "+79161234567"
BSUID = "US.13491208655302741918"
PARENT_BSUID = "US.ENT.7Hq2mZ"

LINK: dict[str, Any] = {
    "event_id": "identity-1",
    "type": "IdentityLinked",
    "subject": "79161234567",
    "linked": BSUID,
    "occurred_at": "2026-11-27T10:00:00Z",
    "source": "whatsapp_webhook",
    "evidence": {"webhook": "contacts"},
}
CHANGE: dict[str, Any] = {
    "event_id": "identity-2",
    "type": "IdentifierChanged",
    "subject": "79251234567",
    "previous": "79161234567",
    "occurred_at": "2026-11-27T10:00:00Z",
    "source": "whatsapp_webhook",
    "evidence": {"message_id": "wamid.SYS1", "system_type": "user_changed_number"},
}
STOP: dict[str, Any] = {
    "event_id": "stop-1",
    "type": "OptedOut",
    "subject": BSUID,
    "occurred_at": "2026-11-27T10:00:00Z",
    "source": "whatsapp_reply",
    "evidence": {"message_id": "wamid.A", "text": "STOP"},
}

GARBAGE = ["12345", "+7 916 123-45-67", "us.1349", "US.", "USA.1", "US.a-b", "US." + "a" * 129, ""]
GARBAGE_IDS = ["short", "spaces", "lower-country", "no-id", "3-letters", "dash", "129", "empty"]


def raw(body: dict[str, Any], **changes: Any) -> bytes:
    return orjson.dumps({**body, **changes})


def without(body: dict[str, Any], *fields: str) -> bytes:
    return orjson.dumps({k: v for k, v in body.items() if k not in fields})


def accepted(parsed: object) -> ConsentEvent:
    assert isinstance(parsed, ConsentEvent), parsed
    return parsed


def rejection(parsed: object) -> str:
    assert isinstance(parsed, Rejected), parsed
    assert parsed.detail
    return parsed.reason


# ---------------------------------------------------------------- normalize_identifier


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("79161234567", PHONE),
        (PHONE, PHONE),
        (" 79161234567 ", PHONE),
        (BSUID, BSUID),
        (PARENT_BSUID, PARENT_BSUID),
        (f"  {BSUID}\n", BSUID),
        ("GB.AbC9", "GB.AbC9"),
        ("US." + "z" * 128, "US." + "z" * 128),
    ],
    ids=["wa-id", "e164", "padded-phone", "bsuid", "parent", "padded-bsuid", "mixed-case", "128"],
)
def test_an_identifier_has_one_canonical_form(given: str, canonical: str) -> None:
    assert normalize_identifier(given) == canonical


@pytest.mark.parametrize("value", GARBAGE, ids=GARBAGE_IDS)
def test_neither_a_phone_number_nor_a_user_id_is_refused(value: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        normalize_identifier(value)


def test_an_invalid_identifier_is_an_invalid_phone_number_for_phone_only_producers() -> None:
    assert issubclass(InvalidIdentifierError, InvalidPhoneNumberError)
    with pytest.raises(InvalidPhoneNumberError):
        normalize_identifier("garbage")


@pytest.mark.parametrize(
    ("value", "bsuid"),
    [
        (BSUID, True),
        (PARENT_BSUID, True),
        ("GB.1", True),
        (PHONE, False),
        ("79161234567", False),
        ("us.1349", False),
        ("US.ENT.", False),
        (f"{BSUID} ", False),
        ("US.١٢٣", False),
    ],
    ids=[
        "bsuid",
        "parent",
        "short",
        "e164",
        "wa-id",
        "lower",
        "parent-no-id",
        "space",
        "non-ascii",
    ],
)
def test_a_user_id_is_told_by_its_form(value: str, bsuid: bool) -> None:
    assert is_bsuid(value) is bsuid


@pytest.mark.parametrize(
    ("identifier", "kind"),
    [
        (PHONE, IdentifierKind.PHONE),
        (BSUID, IdentifierKind.WHATSAPP_USER_ID),
        (PARENT_BSUID, IdentifierKind.WHATSAPP_USER_ID),
    ],
)
def test_each_identifier_has_its_kind(identifier: str, kind: IdentifierKind) -> None:
    assert identifier_kind(identifier) is kind


# ---------------------------------------------------------------- ConsentEvent, SendRequest


@pytest.mark.parametrize("parse", [parse_consent_event, validate_consent_event])
@pytest.mark.parametrize("subject", [BSUID, PARENT_BSUID])
def test_a_consent_event_may_name_a_user_id(parse: Any, subject: str) -> None:
    assert accepted(parse(raw(STOP, subject=subject))).subject == subject
    assert accepted(parse(raw(CONTRACT_GRANT, subject=subject))).subject == subject


@pytest.mark.parametrize("subject", GARBAGE, ids=GARBAGE_IDS)
def test_a_subject_that_is_no_identifier_is_refused_as_invalid_phone(subject: str) -> None:
    assert rejection(parse_consent_event(raw(STOP, subject=subject))) == "invalid_phone"


def test_a_send_request_may_address_a_user_id() -> None:
    parsed = parse_send_request(raw(CONTRACT_REQUEST, recipient=PARENT_BSUID))

    assert isinstance(parsed, SendRequest), parsed
    assert parsed.recipient == PARENT_BSUID


@pytest.mark.parametrize("recipient", GARBAGE, ids=GARBAGE_IDS)
def test_a_recipient_that_is_no_identifier_is_refused_as_invalid_phone(recipient: str) -> None:
    assert rejection(parse_send_request(raw(CONTRACT_REQUEST, recipient=recipient))) == (
        "invalid_phone"
    )


# ---------------------------------------------------------------- identity events


def test_an_identity_link_is_accepted_with_both_sides_normalised() -> None:
    event = accepted(parse_consent_event(raw(LINK)))

    assert event.type is EventType.IDENTITY_LINKED
    assert (event.subject, event.linked, event.previous) == (PHONE, BSUID, None)
    assert event.other_identifier == BSUID


def test_an_identifier_change_is_accepted_with_both_sides_normalised() -> None:
    event = accepted(parse_consent_event(raw(CHANGE)))

    assert event.type is EventType.IDENTIFIER_CHANGED
    assert (event.subject, event.previous, event.linked) == ("+79251234567", PHONE, None)
    assert event.other_identifier == PHONE


def test_consent_events_name_no_other_identifier() -> None:
    assert accepted(parse_consent_event(raw(STOP))).other_identifier is None
    assert accepted(parse_consent_event(raw(CONTRACT_GRANT))).other_identifier is None


@pytest.mark.parametrize("body", [LINK, CHANGE], ids=["link", "change"])
@pytest.mark.parametrize("source", ["whatsapp_reply", "crm", "event_registration"])
def test_identity_events_come_only_from_the_webhook(body: dict[str, Any], source: str) -> None:
    assert rejection(parse_consent_event(raw(body, source=source))) == "invalid_source"


@pytest.mark.parametrize(
    "data",
    [
        without(LINK, "linked"),
        raw(LINK, linked=None),
        raw(LINK, linked=LINK["subject"]),
        raw(LINK, linked=PHONE),
        raw(LINK, subject=BSUID),
        raw(LINK, previous=BSUID, linked=None),
        without(CHANGE, "previous"),
        raw(CHANGE, previous=CHANGE["subject"]),
        raw(CHANGE, previous="+79251234567"),
        raw(CHANGE, linked=PHONE, previous=None),
    ],
    ids=[
        "link-missing",
        "link-null",
        "link-self",
        "link-self-normalised",
        "link-self-user-id",
        "link-given-as-previous",
        "change-missing",
        "change-self",
        "change-self-normalised",
        "change-given-as-linked",
    ],
)
def test_an_identity_event_needs_an_other_identifier_distinct_from_its_subject(
    data: bytes,
) -> None:
    assert rejection(parse_consent_event(data)) == "invalid_identity"


@pytest.mark.parametrize(
    "data",
    [raw(LINK, linked="garbage"), raw(CHANGE, previous="12345")],
    ids=["linked", "previous"],
)
def test_an_other_identifier_that_is_no_identifier_is_refused_as_invalid_phone(
    data: bytes,
) -> None:
    assert rejection(parse_consent_event(data)) == "invalid_phone"


# ---------------------------------------------------------------- cloud_api_body


def _send(recipient: str, message: dict[str, Any] | None = None) -> SendRequest:
    return SendRequest(
        request_id="r-1",
        recipient=recipient,
        purpose="event_reminder",
        message=message or {"type": "text", "text": {"body": "Reminder: 10:00"}},
    )


def test_a_user_id_is_addressed_as_recipient() -> None:
    body = cloud_api_body(_send(BSUID))

    assert body == {
        "type": "text",
        "text": {"body": "Reminder: 10:00"},
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "recipient": BSUID,
    }


def test_a_phone_number_is_addressed_to_its_wa_id_digits() -> None:
    body = cloud_api_body(_send("79161234567"))

    assert body["to"] == "79161234567"
    assert "recipient" not in body
    assert (body["messaging_product"], body["recipient_type"]) == ("whatsapp", "individual")


def test_a_message_cannot_change_the_recipient_type() -> None:
    body = cloud_api_body(
        _send(BSUID, {"type": "text", "text": {"body": "hi"}, "recipient_type": "group"})
    )

    assert body["recipient_type"] == "individual"
    assert body["recipient"] == BSUID


@pytest.mark.parametrize(
    "addressing",
    [{"recipient": "US.999"}, {"to": "79251234567"}, {"messaging_product": "sms"}],
    ids=["recipient", "to", "messaging_product"],
)
def test_a_message_cannot_readdress_the_send(addressing: dict[str, str]) -> None:
    message = {"type": "text", "text": {"body": "hi"}, **addressing}

    parsed = parse_send_request(raw(CONTRACT_REQUEST, recipient=BSUID, message=message))

    assert rejection(parsed) == "invalid_message"
