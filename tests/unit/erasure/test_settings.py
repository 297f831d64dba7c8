"""A service that will seal personal fields refuses to start, naming the variable,
on keys it cannot use, and never writes a key into the message (shared/erasure/settings.py)."""

import base64

import pytest
from pydantic import ValidationError

from shared.erasure.settings import ErasureSettings, MasterKeySettings, describe
from tests.support.erasure_keys import InMemoryKeyStore, master_keys_setting

INDEX_KEY = base64.b64encode(b"i" * 32).decode()
USABLE = {
    "ERASURE_MASTER_KEYS": master_keys_setting(),
    "ERASURE_ACTIVE_KEY": "2026-12",
    "ERASURE_INDEX_KEY": INDEX_KEY,
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in USABLE.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_usable_settings_give_the_keys_and_the_cache_defaults(env: pytest.MonkeyPatch) -> None:
    settings = ErasureSettings()
    assert settings.master_key_ring().active_id == "2026-12"
    assert set(settings.master_key_ring().keys) == {"2026-06", "2026-12"}
    assert settings.pseudonyms().of("+79161234567") != settings.pseudonyms().of("+79161234568")
    assert (settings.key_cache_seconds, settings.key_cache_size) == (600, 100_000)


async def test_the_settings_make_the_keys_a_service_uses(env: pytest.MonkeyPatch) -> None:
    keys = ErasureSettings().data_keys(InMemoryKeyStore())
    written = await keys.for_writing(["p1"])
    assert await keys.for_reading(["p1"]) == written


REFUSED = [
    pytest.param("ERASURE_ACTIVE_KEY", "2027-01", "ERASURE_ACTIVE_KEY '2027-01'", id="inactive"),
    pytest.param("ERASURE_MASTER_KEYS", "", "ERASURE_MASTER_KEYS is not set", id="no-masters"),
    pytest.param("ERASURE_INDEX_KEY", "", "ERASURE_INDEX_KEY is not set", id="no-index-key"),
    pytest.param(
        "ERASURE_INDEX_KEY",
        base64.b64encode(b"i" * 16).decode(),
        "ERASURE_INDEX_KEY has 16 bytes",
        id="short-index-key",
    ),
    pytest.param("ERASURE_KEY_CACHE_SECONDS", "0", "ERASURE_KEY_CACHE_SECONDS: ", id="no-cache"),
    pytest.param(
        "ERASURE_KEY_CACHE_SECONDS", "864000", "ERASURE_KEY_CACHE_SECONDS: ", id="ten-days"
    ),
    pytest.param("ERASURE_KEY_CACHE_SIZE", "0", "ERASURE_KEY_CACHE_SIZE: ", id="empty-cache"),
]


@pytest.mark.parametrize(("variable", "value", "says"), REFUSED)
def test_unusable_settings_are_refused_by_name(
    env: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    env.setenv(variable, value)
    with pytest.raises(ValidationError) as refused:
        ErasureSettings()
    assert says in describe(refused.value)


def test_a_refusal_never_shows_a_key(env: pytest.MonkeyPatch) -> None:
    short = base64.b64encode(b"m" * 31).decode()
    env.setenv("ERASURE_MASTER_KEYS", f'{{"2026-12": "{short}"}}')
    with pytest.raises(ValidationError) as refused:
        ErasureSettings()
    assert "has 31 bytes" in describe(refused.value)
    assert short not in str(refused.value)
    assert INDEX_KEY not in str(refused.value)


def test_the_rotation_needs_the_master_keys_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERASURE_MASTER_KEYS", master_keys_setting())
    monkeypatch.setenv("ERASURE_ACTIVE_KEY", "2026-12")
    monkeypatch.delenv("ERASURE_INDEX_KEY", raising=False)
    assert MasterKeySettings().master_key_ring().active_id == "2026-12"
