"""The webhook's door, in memory: Meta's signature is the only key, compared as bytes;
a signed body that is no webhook is refused with a reason and kept on the DLQ."""

import hashlib
import hmac
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.inbound.meta_signature import signature_valid
from services.inbound.webhook import webhook_router
from shared.topics import WHATSAPP_INBOUND, dlq
from tests.support.fake_broker import BROKER_SECRET, FakeBroker
from tests.support.webhooks import APP_SECRET, signature_headers, signed, text_webhook

URL = "/webhooks/whatsapp"


def client(broker: FakeBroker) -> TestClient:
    app = FastAPI()
    app.include_router(webhook_router(broker, APP_SECRET, "verify", 1024 * 1024))  # type: ignore[arg-type]
    return TestClient(app, raise_server_exceptions=False)


def post(broker: FakeBroker, body: bytes, headers: Any = None) -> Any:
    return client(broker).post(URL, content=body, headers=headers)


def signed_post(broker: FakeBroker, body: bytes) -> Any:
    return post(broker, body, signature_headers(body))


# -- the signature ---------------------------------------------------------------------


def test_a_signed_webhook_is_published_keyed_by_its_sender() -> None:
    broker = FakeBroker()
    raw, headers = signed(text_webhook("79161234567", "STOP"))
    response = post(broker, raw, headers)
    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    assert [(p.topic, p.value, p.key) for p in broker.sent] == [
        (WHATSAPP_INBOUND, raw, b"79161234567")
    ]


def test_the_published_record_keeps_metas_header_exactly_as_sent() -> None:
    broker = FakeBroker()
    raw = orjson.dumps(text_webhook("79161234567", "STOP"))
    # Upper-case hex verifies too: the record keeps what Meta sent, not a normal form.
    header = "sha256=" + hmac.new(APP_SECRET, raw, hashlib.sha256).hexdigest().upper()

    assert post(broker, raw, {"X-Hub-Signature-256": header}).status_code == 200

    [published] = broker.sent
    assert published.value == raw
    assert published.headers == {"x-hub-signature-256": header}


def test_the_dead_letter_copy_of_a_signed_body_keeps_metas_header_too() -> None:
    broker = FakeBroker()
    headers = signature_headers(b"[]")

    assert post(broker, b"[]", headers).status_code == 400

    [letter] = broker.sent
    assert letter.headers is not None
    assert letter.headers["x-hub-signature-256"] == headers["X-Hub-Signature-256"]


def test_a_non_ascii_signature_is_refused_as_unauthenticated_not_a_server_error() -> None:
    broker = FakeBroker()
    raw = orjson.dumps(text_webhook("79161234567", "STOP"))
    # 32 two-byte characters: 64 bytes, the length of a real hex digest.
    header = ("sha256=" + "é" * 32).encode()
    response = post(broker, raw, [(b"X-Hub-Signature-256", header)])
    assert response.status_code == 401
    assert response.json()["reason"] == "bad_signature"
    assert broker.sent == []


@pytest.mark.parametrize(
    "header",
    [
        "",
        "sha256=",
        "sha1=" + "0" * 40,
        "sha256=" + "0" * 63,
        "sha256=" + "0" * 65,
        "sha256=" + "g" * 64,
        " sha256=" + "0" * 64,
        "sha256=" + "0" * 64 + "\t",
    ],
)
def test_a_malformed_signature_is_refused_with_its_reason(header: str) -> None:
    broker = FakeBroker()
    response = post(broker, b"{}", {"X-Hub-Signature-256": header})
    assert response.status_code == 401
    assert response.json() == {
        "reason": "bad_signature",
        "detail": "X-Hub-Signature-256 missing, malformed or wrong",
    }
    assert broker.sent == []


def test_a_signature_under_another_secret_is_refused() -> None:
    raw, headers = signed(text_webhook("79161234567", "STOP"), secret=b"not-the-secret")
    assert post(FakeBroker(), raw, headers).status_code == 401


def test_the_signature_compares_hex_digits_in_either_case() -> None:
    body = b'{"entry": []}'
    digest = hmac.new(APP_SECRET, body, hashlib.sha256).hexdigest()
    assert signature_valid(APP_SECRET, body, f"sha256={digest.upper()}")
    assert not signature_valid(APP_SECRET, body + b" ", f"sha256={digest}")


def test_an_empty_secret_never_verifies_and_the_router_refuses_it() -> None:
    body = b'{"entry": []}'
    forged = "sha256=" + hmac.new(b"", body, hashlib.sha256).hexdigest()
    assert not signature_valid(b"", body, forged)
    with pytest.raises(ValueError, match="WHATSAPP_APP_SECRET"):
        webhook_router(FakeBroker(), b"", "verify", 1024)  # type: ignore[arg-type]


# -- a signed body that is no webhook --------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[]", "not_a_webhook"),
        (b"5", "not_a_webhook"),
        (b'"entry"', "not_a_webhook"),
        (b'{"hello": 1}', "not_a_webhook"),
        (b'{"entry": 5}', "not_a_webhook"),
        (b'{"entry": [5]}', "not_a_webhook"),
        (b"not json", "invalid_json"),
        (b'{"entry": [', "invalid_json"),
        (b"\xff\xfe{}", "invalid_json"),
    ],
)
def test_a_signed_body_that_is_no_webhook_is_refused_and_kept_on_the_dlq(
    body: bytes, reason: str
) -> None:
    broker = FakeBroker()
    response = signed_post(broker, body)
    assert response.status_code == 400
    assert response.json()["reason"] == reason
    assert set(response.json()) == {"reason", "detail"}
    [letter] = broker.sent
    assert (letter.topic, letter.value, letter.key) == (dlq(WHATSAPP_INBOUND), body, None)
    assert letter.headers is not None
    assert letter.headers["error.reason"] == reason
    assert letter.headers["error.detail"]
    assert letter.headers["source.topic"] == WHATSAPP_INBOUND
    assert "source.partition" not in letter.headers


def test_invalid_json_is_answered_without_the_parsers_words() -> None:
    response = signed_post(FakeBroker(), b"not json")
    assert response.json() == {"reason": "invalid_json", "detail": "the body is not UTF-8 JSON"}


def test_a_dlq_that_cannot_take_the_copy_answers_503_so_meta_retries() -> None:
    broker = FakeBroker(failing_topics={dlq(WHATSAPP_INBOUND)})
    response = signed_post(broker, b"[]")
    assert response.status_code == 503
    assert response.json()["reason"] == "kafka_unavailable"
    assert BROKER_SECRET not in response.text
    assert "ConnectionError" not in response.text


def test_a_broker_down_answers_503_without_the_exception_text() -> None:
    broker = FakeBroker(failing_topics={WHATSAPP_INBOUND})
    raw, headers = signed(text_webhook("79161234567", "STOP"))
    response = post(broker, raw, headers)
    assert response.status_code == 503
    assert response.json()["reason"] == "kafka_unavailable"
    assert BROKER_SECRET not in response.text
