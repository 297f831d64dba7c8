"""Inbound refuses to start on a secret anyone could know or guess or without the key
it signs events with, the readers of the log without the keys they verify with, and
the dispatcher sends its access token over TLS only."""

import re

import pytest
from pydantic import ValidationError

from services.consent.settings import ConsentSettings
from services.dispatcher.settings import DispatcherSettings
from services.inbound.settings import InboundSettings
from tests.support.signing import INBOUND_KEY

STRONG_SECRET = "0123456789abcdef0123456789abcdef"
STRONG_TOKEN = "a-verify-token-of-ours"


@pytest.mark.parametrize(
    ("secret", "token", "says"),
    [
        ("", STRONG_TOKEN, "WHATSAPP_APP_SECRET is not set"),
        ("local-app-secret", STRONG_TOKEN, "WHATSAPP_APP_SECRET is a public default"),
        ("short-secret", STRONG_TOKEN, "WHATSAPP_APP_SECRET has 12 characters, fewer than 32"),
        (STRONG_SECRET, "", "WHATSAPP_VERIFY_TOKEN is not set"),
        (STRONG_SECRET, "local-verify-token", "WHATSAPP_VERIFY_TOKEN is a public default"),
        (STRONG_SECRET, "short", "WHATSAPP_VERIFY_TOKEN has 5 characters, fewer than 16"),
    ],
)
def test_inbound_refuses_a_weak_secret_naming_it(
    monkeypatch: pytest.MonkeyPatch, secret: str, token: str, says: str
) -> None:
    monkeypatch.setenv("WHATSAPP_APP_SECRET", secret)
    monkeypatch.setenv("WHATSAPP_VERIFY_TOKEN", token)
    monkeypatch.setenv("INBOUND_SIGNING_KEY", INBOUND_KEY.setting())

    with pytest.raises(ValidationError, match=says):
        InboundSettings()


def test_inbound_starts_with_strong_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHATSAPP_APP_SECRET", STRONG_SECRET)
    monkeypatch.setenv("WHATSAPP_VERIFY_TOKEN", STRONG_TOKEN)
    monkeypatch.setenv("INBOUND_SIGNING_KEY", INBOUND_KEY.setting())

    assert InboundSettings().whatsapp_app_secret.get_secret_value() == STRONG_SECRET


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("", "INBOUND_SIGNING_KEY is not set"),
        ("no-colon", "expected '<key id>:<base64 key>'"),
        ("k1:not base64!", "key 'k1' is not base64"),
        ("k1:c2hvcnQ=", "key 'k1' has 5 bytes, not 32"),
        ("bad id:" + "A" * 44, "key id 'bad id' must be"),
    ],
)
def test_inbound_refuses_to_start_without_a_readable_signing_key(
    monkeypatch: pytest.MonkeyPatch, key: str, says: str
) -> None:
    monkeypatch.setenv("WHATSAPP_APP_SECRET", STRONG_SECRET)
    monkeypatch.setenv("WHATSAPP_VERIFY_TOKEN", STRONG_TOKEN)
    monkeypatch.setenv("INBOUND_SIGNING_KEY", key)

    with pytest.raises(ValidationError, match=re.escape(says)):
        InboundSettings()


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        ("", "EVENT_VERIFY_KEYS is not set"),
        ("k1:" + "A" * 43 + "=,k1:" + "A" * 43 + "=", "key id 'k1' is given twice"),
        ("k1:AAAA", "key 'k1' has 3 bytes, not 32"),
    ],
)
def test_the_consent_service_refuses_to_start_without_keys_to_verify_with(
    monkeypatch: pytest.MonkeyPatch, keys: str, says: str
) -> None:
    monkeypatch.setenv("EVENT_VERIFY_KEYS", keys)

    with pytest.raises(ValidationError, match=re.escape(says)):
        ConsentSettings()


def test_an_enabled_sender_refuses_to_start_without_its_signing_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DISPATCHER_SENDER_ENABLED", "true")
    monkeypatch.setenv("DISPATCHER_PHONE_NUMBER_ID", "123")
    monkeypatch.setenv("DISPATCHER_ACCESS_TOKEN", "token")
    monkeypatch.delenv("DISPATCHER_SIGNING_KEY", raising=False)

    with pytest.raises(ValidationError, match="DISPATCHER_SIGNING_KEY is not set"):
        DispatcherSettings()


def test_the_other_services_need_no_webhook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WHATSAPP_APP_SECRET", raising=False)

    assert DispatcherSettings().whatsapp_app_secret.get_secret_value() == ""


@pytest.mark.parametrize(
    "url", ["http://graph.facebook.com", "ftp://graph.facebook.com", "http://10.0.0.5:8080"]
)
def test_the_graph_api_is_reached_over_tls_only(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("DISPATCHER_GRAPH_API_URL", url)

    with pytest.raises(ValidationError, match="must be https"):
        DispatcherSettings()


@pytest.mark.parametrize(
    "url", ["https://graph.facebook.com", "http://127.0.0.1:8999", "http://localhost:8999"]
)
def test_https_or_a_local_test_double_is_accepted(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("DISPATCHER_GRAPH_API_URL", url)

    assert DispatcherSettings().graph_api_url == url
