"""Only an event signed by the service that heard WhatsApp may claim WhatsApp as its
source and lift a STOP; restrictions count unsigned unless told otherwise; keys
rotate by listing several."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.consent.authenticity import (
    SIGNATURE_HEADER,
    UNAUTHENTICATED_SOURCE,
    InvalidKeyError,
    Keyring,
    SigningKey,
    Trust,
    UnsignedRestrictions,
    parse_positions,
)
from shared.contract.events import ConsentEvent, EventType
from shared.rejection import Rejected
from tests.support.signing import DISPATCHER_KEY, FORGER_KEY, INBOUND_KEY, TRUST
from tests.unit.domain.builders import SUBJECT, T0, granted, opted_in, opted_out, revoked


def _raw(event: ConsentEvent) -> bytes:
    return event.model_dump_json().encode()


def _signal(kind: EventType, source: str) -> ConsentEvent:
    return ConsentEvent.model_validate(
        {
            "event_id": f"{kind}-1",
            "type": kind,
            "subject": SUBJECT,
            "occurred_at": T0,
            "source": source,
            "purposes": ["educational_material"],
        }
    )


def _link() -> ConsentEvent:
    return ConsentEvent.model_validate(
        {
            "event_id": "link-1",
            "type": "IdentityLinked",
            "subject": SUBJECT,
            "occurred_at": T0,
            "source": "whatsapp_webhook",
            "linked": "US.13491208655302741918",
        }
    )


LIFTING = [
    opted_in(),
    _signal(EventType.MARKETING_RESUMED, "whatsapp_user_preferences"),
    _signal(EventType.USER_MESSAGED, "whatsapp_reply"),
    _link(),
]
RESTRICTING = [
    opted_out(),
    _signal(EventType.MARKETING_STOPPED, "whatsapp_user_preferences"),
    _signal(EventType.DELIVERY_LIMITED, "whatsapp_status"),
    _signal(EventType.DELIVERY_FAILED, "whatsapp_status"),
]


@pytest.mark.parametrize("event", LIFTING, ids=lambda e: e.type.value)
def test_an_event_that_lifts_counts_only_signed_by_a_trusted_key(event: ConsentEvent) -> None:
    raw = _raw(event)

    assert TRUST.judge(event, raw, [INBOUND_KEY.header(raw)]) is True
    unsigned = TRUST.judge(event, raw, [])
    forged = TRUST.judge(event, raw, [FORGER_KEY.header(raw)])
    assert isinstance(unsigned, Rejected) and isinstance(forged, Rejected)
    assert unsigned.reason == forged.reason == UNAUTHENTICATED_SOURCE
    assert "no signature.ed25519 header" in unsigned.detail
    assert "does not verify with key 'test-inbound'" in forged.detail
    assert "it changes nothing" in unsigned.detail


@pytest.mark.parametrize("event", LIFTING, ids=lambda e: e.type.value)
def test_the_senders_key_cannot_sign_what_lifts_a_stop(event: ConsentEvent) -> None:
    raw = _raw(event)

    refused = TRUST.judge(event, raw, [DISPATCHER_KEY.header(raw)])

    assert isinstance(refused, Rejected)
    assert f"key 'test-dispatcher' may not sign a {event.type.value}" in refused.detail


@pytest.mark.parametrize("event", RESTRICTING, ids=lambda e: e.type.value)
def test_a_restriction_counts_unsigned_but_unauthenticated_unless_refused(
    event: ConsentEvent,
) -> None:
    raw = _raw(event)
    strict = Trust(TRUST.keyring, UnsignedRestrictions.REFUSE)

    assert TRUST.judge(event, raw, []) is False
    assert TRUST.judge(event, raw, [FORGER_KEY.header(raw)]) is False
    assert TRUST.judge(event, raw, [INBOUND_KEY.header(raw)]) is True
    refused = strict.judge(event, raw, [])
    assert isinstance(refused, Rejected) and refused.reason == UNAUTHENTICATED_SOURCE
    assert strict.judge(event, raw, [INBOUND_KEY.header(raw)]) is True


def test_the_senders_key_signs_the_platforms_refusals_only() -> None:
    failed = _signal(EventType.DELIVERY_FAILED, "whatsapp_status")
    stop = opted_out()

    assert TRUST.judge(failed, _raw(failed), [DISPATCHER_KEY.header(_raw(failed))]) is True
    # An opt-out counts unsigned, but one the sender's key signed proves nothing.
    assert TRUST.judge(stop, _raw(stop), [DISPATCHER_KEY.header(_raw(stop))]) is False


@pytest.mark.parametrize("event", [granted(), revoked(source="crm")], ids=["grant", "revocation"])
def test_other_systems_events_need_no_signature(event: ConsentEvent) -> None:
    strict = Trust(TRUST.keyring, UnsignedRestrictions.REFUSE)

    assert strict.judge(event, _raw(event), []) is True


def test_a_log_written_before_signing_counts_as_it_did_before_the_cutover() -> None:
    event = opted_in()
    cutover = Trust(TRUST.keyring, signed_from=parse_positions("0:100, 2:7"))

    assert cutover.judge(event, _raw(event), [], (0, 99)) is True
    assert cutover.judge(event, _raw(event), [], (2, 6)) is True
    assert isinstance(cutover.judge(event, _raw(event), [], (0, 100)), Rejected)
    assert isinstance(cutover.judge(event, _raw(event), [], (1, 0)), Rejected)
    assert isinstance(cutover.judge(event, _raw(event), []), Rejected)
    # Before the cutover a signature still counts for what it says.
    forged = [FORGER_KEY.header(_raw(event))]
    assert isinstance(cutover.judge(event, _raw(event), forged, (0, 99)), Rejected)


@pytest.mark.parametrize(
    ("setting", "says"),
    [("0:1,0:2", "partition 0 is given twice"), ("0", "expected"), ("a:1", "expected")],
)
def test_an_unreadable_cutover_is_refused(setting: str, says: str) -> None:
    with pytest.raises(InvalidKeyError, match=says):
        parse_positions(setting)


@pytest.mark.parametrize("types", ["", "OptedIn+Nonsense", "+"])
def test_a_key_limited_to_unknown_types_is_refused(types: str) -> None:
    entry = f"{INBOUND_KEY.public_setting()}:{types}"

    with pytest.raises(InvalidKeyError, match="unknown one"):
        Keyring.parse(entry)


def test_a_signature_over_other_bytes_does_not_verify() -> None:
    event, other = opted_in(event_id="a"), opted_in(event_id="b")
    header = INBOUND_KEY.header(_raw(other))

    refused = TRUST.judge(event, _raw(event), [header])

    assert isinstance(refused, Rejected) and "does not verify" in refused.detail


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ([(SIGNATURE_HEADER, b"no-colon")], "a malformed signature"),
        ([(SIGNATURE_HEADER, None)], "a malformed signature"),
        ([(SIGNATURE_HEADER, b"unknown-key:AAAA")], "signed by no known key ('unknown-key')"),
        ([(SIGNATURE_HEADER, b"test-inbound:not base64!")], "does not verify"),
        ([("traceparent", b"00-abc-01")], "no signature.ed25519 header"),
    ],
)
def test_a_malformed_signature_is_refused_with_why(
    headers: list[tuple[str, bytes | None]], says: str
) -> None:
    event = opted_in()

    refused = TRUST.judge(event, _raw(event), headers)

    assert isinstance(refused, Rejected) and says in refused.detail


def test_two_signature_headers_are_refused_even_if_one_verifies() -> None:
    event = opted_in()
    raw = _raw(event)

    refused = TRUST.judge(event, raw, [INBOUND_KEY.header(raw), FORGER_KEY.header(raw)])

    assert isinstance(refused, Rejected) and "2 signature.ed25519 headers" in refused.detail


def test_keys_rotate_by_listing_the_new_one_beside_the_old() -> None:
    old, new = SigningKey.generate("inbound-2026-11"), SigningKey.generate("inbound-2026-12")
    during = Keyring.parse(f"{old.public_setting()},{new.public_setting()}")
    after = Keyring.parse(new.public_setting())
    raw = _raw(opted_in())

    assert during.problem(raw, [old.header(raw)]) is None
    assert during.problem(raw, [new.header(raw)]) is None
    assert after.problem(raw, [old.header(raw)]) is not None


def test_a_key_round_trips_through_its_setting() -> None:
    key = SigningKey.generate("k")
    again = SigningKey.parse(key.setting())
    raw = b"{}"

    assert Keyring.parse(again.public_setting()).problem(raw, [key.header(raw)]) is None


@given(st.binary(min_size=1, max_size=200), st.data())
def test_any_changed_byte_breaks_the_signature(value: bytes, data: st.DataObject) -> None:
    header = INBOUND_KEY.header(value)
    index = data.draw(st.integers(0, len(value) - 1))
    flip = data.draw(st.integers(1, 255))
    changed = value[:index] + bytes([value[index] ^ flip]) + value[index + 1 :]

    assert TRUST.keyring.problem(value, [header]) is None
    assert TRUST.keyring.problem(changed, [header]) is not None
