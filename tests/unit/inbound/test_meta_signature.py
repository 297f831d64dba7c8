"""Meta's signature on a record of whatsapp.inbound.v1 (INBOUND_TOPIC_TRUST): believed
only under `meta_signed`, and then only when the record's one `x-hub-signature-256`
header is the HMAC of its exact value; whatever else is in the header is a refusal
with its reason, never an exception. An unproven record may only take permission away."""

import hashlib
import hmac
from collections.abc import Sequence

import orjson
import pytest

from services.inbound.domain.provenance import Provenance
from services.inbound.meta_signature import (
    RECORD_HEADER,
    RecordTrust,
    TopicTrust,
    record_signature_problem,
)
from services.inbound.settings import InboundSettings
from shared.consent.authenticity import RESTRICTING
from shared.contract.events import ConsentEvent, EventType
from tests.support.signing import INBOUND_KEY
from tests.support.webhooks import APP_SECRET, text_webhook

VALUE = orjson.dumps(text_webhook("79161234567", "START", "wamid.A"))
META = "sha256=" + hmac.new(APP_SECRET, VALUE, hashlib.sha256).hexdigest()
OTHER_SECRET = "sha256=" + hmac.new(b"x" * 32, VALUE, hashlib.sha256).hexdigest()

Headers = Sequence[tuple[str, bytes | None]]


def problem(headers: Headers, value: bytes | None = VALUE) -> str | None:
    return record_signature_problem(APP_SECRET, value, headers)


# -- the header ------------------------------------------------------------------------


def test_metas_header_as_the_receiver_keeps_it_proves_the_record() -> None:
    assert problem([(RECORD_HEADER, META.encode())]) is None


def test_the_header_name_is_read_in_any_case_as_http_reads_it() -> None:
    assert problem([("X-Hub-Signature-256", META.encode())]) is None


def test_other_headers_beside_it_change_nothing() -> None:
    headers: Headers = [("correlation_id", b"1"), ("x-hub-signature", b"sha1=0"), ("e", None)]
    assert problem([*headers, (RECORD_HEADER, META.encode())]) is None


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ([], "carries no x-hub-signature-256 header"),
        ([("x-hub-signature", META.encode())], "carries no x-hub-signature-256 header"),
        ([(RECORD_HEADER, None)], "header has no value"),
        ([(RECORD_HEADER, ("sha256=" + "é" * 32).encode())], "header is not ASCII"),
        ([(RECORD_HEADER, b"\xff" * 71)], "header is not ASCII"),
        ([(RECORD_HEADER, META.encode())] * 2, "carries 2 x-hub-signature-256 headers"),
        ([(RECORD_HEADER, META.encode()), (RECORD_HEADER, None)], "carries 2"),
        ([(RECORD_HEADER, OTHER_SECRET.encode())], "is not Meta's signature of its value"),
        ([(RECORD_HEADER, b"")], "is not Meta's signature of its value"),
        ([(RECORD_HEADER, META[7:].encode())], "is not Meta's signature of its value"),
        ([(RECORD_HEADER, f" {META}".encode())], "is not Meta's signature of its value"),
    ],
    ids=[
        "none",
        "sha1-header-only",
        "null",
        "non-ascii",
        "not-utf8",
        "twice",
        "twice-one-null",
        "another-secret",
        "empty",
        "no-prefix",
        "padded",
    ],
)
def test_a_record_not_signed_by_meta_is_refused_with_its_reason(
    headers: Headers, says: str
) -> None:
    found = problem(headers)
    assert found is not None and says in found


def test_the_signature_covers_the_exact_bytes_of_the_value() -> None:
    signed = [(RECORD_HEADER, META.encode())]
    assert problem(signed, VALUE + b" ") is not None
    assert problem(signed, None) is not None  # a tombstone proves nothing


def test_no_record_is_proven_under_an_empty_secret() -> None:
    forged = "sha256=" + hmac.new(b"", VALUE, hashlib.sha256).hexdigest()
    assert record_signature_problem(b"", VALUE, [(RECORD_HEADER, forged.encode())]) is not None


# -- INBOUND_TOPIC_TRUST ---------------------------------------------------------------


def test_under_any_the_header_is_not_read_so_a_wrong_one_changes_nothing() -> None:
    trust = RecordTrust(TopicTrust.ANY, APP_SECRET)
    assert trust.provenance(VALUE, [(RECORD_HEADER, OTHER_SECRET.encode())]).proven
    assert trust.provenance(VALUE, []).proven


def test_under_meta_signed_a_record_is_proven_by_metas_header_alone() -> None:
    trust = RecordTrust(TopicTrust.META_SIGNED, APP_SECRET)
    assert trust.provenance(VALUE, [(RECORD_HEADER, META.encode())]).proven

    refused = trust.provenance(VALUE, [(RECORD_HEADER, OTHER_SECRET.encode())])

    assert not refused.proven
    assert refused.unproven is not None
    assert "INBOUND_TOPIC_TRUST is meta_signed" in refused.unproven
    assert "not Meta's signature of its value" in refused.unproven


def test_the_setting_defaults_to_any_as_the_contract_lets_any_gateway_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WHATSAPP_APP_SECRET", APP_SECRET.decode())
    monkeypatch.setenv("WHATSAPP_VERIFY_TOKEN", "a-verify-token-of-ours")
    monkeypatch.setenv("INBOUND_SIGNING_KEY", INBOUND_KEY.setting())
    assert InboundSettings().topic_trust is TopicTrust.ANY

    monkeypatch.setenv("INBOUND_TOPIC_TRUST", "meta_signed")
    assert InboundSettings().topic_trust is TopicTrust.META_SIGNED

    monkeypatch.setenv("INBOUND_TOPIC_TRUST", "signed")
    with pytest.raises(ValueError, match="topic_trust"):
        InboundSettings()


# -- what an unproven record may write -------------------------------------------------


def _event(kind: EventType) -> ConsentEvent:
    return ConsentEvent.model_construct(type=kind)  # type: ignore[call-arg]


@pytest.mark.parametrize("kind", list(EventType))
def test_an_unproven_record_writes_only_what_takes_permission_away(kind: EventType) -> None:
    unproven = Provenance(unproven="no header")
    assert unproven.admits(_event(kind)) is (kind in RESTRICTING)
    assert Provenance().admits(_event(kind))


def test_an_unproven_record_is_neither_signed_nor_confirmed() -> None:
    unproven, proven = Provenance(unproven="no header"), Provenance()
    assert (unproven.signs, unproven.confirms) == (False, False)
    assert (proven.signs, proven.confirms) == (True, True)
