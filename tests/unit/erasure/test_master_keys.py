"""Master keys are read from configuration or refused by name, never by value, and a
rotation rewraps a data key without changing what it opens (shared/erasure/master_keys.py)."""

import base64

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.erasure.data_keys import DataKey, WrappedKey
from shared.erasure.field_cipher import open_field, seal_field
from shared.erasure.master_keys import (
    InvalidMasterKeysError,
    MasterKeys,
    UnknownMasterKeyError,
    UnwrapError,
)
from tests.support.erasure_keys import MASTER_KEYS, master_keys_setting, masters

SECRET = base64.b64encode(b"s" * 32).decode()
SHORT = base64.b64encode(b"s" * 16).decode()


def _setting(listed: object) -> str:
    return orjson.dumps(listed).decode()


REFUSED = [
    pytest.param("", "a", "is not set", id="unset"),
    pytest.param("{not json", "a", "is not JSON", id="not-json"),
    pytest.param(_setting([SECRET]), "a", "JSON object", id="a-list"),
    pytest.param("{}", "a", "JSON object of at least one", id="empty"),
    pytest.param(_setting({"a": SHORT}), "a", "key 'a' has 16 bytes, not 32", id="short"),
    pytest.param(
        _setting({"a": base64.b64encode(b"s" * 48).decode()}), "a", "has 48 bytes", id="long"
    ),
    pytest.param(_setting({"a": "not base64!"}), "a", "key 'a' is not base64", id="not-base64"),
    pytest.param(_setting({"a": 42}), "a", "key 'a' is not a string", id="not-a-string"),
    pytest.param(_setting({"a b": SECRET}), "a b", "key id 'a b' is not", id="bad-id"),
    pytest.param(_setting({"a": SECRET}), "b", "ERASURE_ACTIVE_KEY 'b' is not one", id="inactive"),
    pytest.param(_setting({"a": SECRET}), "", "ERASURE_ACTIVE_KEY '' is not one", id="no-active"),
    pytest.param(
        _setting({"a": SECRET, "b": SECRET}), "a", "the same key under two ids", id="same-twice"
    ),
]


@pytest.mark.parametrize(("setting", "active", "says"), REFUSED)
def test_unusable_master_keys_are_refused_by_name_never_by_value(
    setting: str, active: str, says: str
) -> None:
    with pytest.raises(InvalidMasterKeysError, match=says) as refused:
        MasterKeys.parse(setting, active)
    assert SECRET not in str(refused.value)
    assert SHORT not in str(refused.value)


def test_new_keys_are_wrapped_under_the_active_master_key() -> None:
    ring = masters("2026-12", "2026-06", "2026-12")
    key = DataKey.generate()
    wrapped = ring.wrap(key)
    assert wrapped.master_key_id == "2026-12"
    assert len(wrapped.wrapped) == 40  # RFC 3394: the key and an 8-byte check
    assert ring.unwrap(wrapped) == key


def test_a_key_under_an_unlisted_master_key_is_refused_naming_it() -> None:
    wrapped = masters("2026-06").wrap(DataKey.generate())
    with pytest.raises(UnknownMasterKeyError, match="'2026-06'"):
        masters("2026-12").unwrap(wrapped)


def test_a_key_that_does_not_open_under_its_master_key_is_refused() -> None:
    wrapped = masters("2026-06").wrap(DataKey.generate())
    impostor = MasterKeys.parse(master_keys_setting({"2026-06": MASTER_KEYS["2026-12"]}), "2026-06")
    with pytest.raises(UnwrapError, match="'2026-06'"):
        impostor.unwrap(wrapped)
    with pytest.raises(UnwrapError):
        masters("2026-06").unwrap(WrappedKey("2026-06", wrapped.wrapped[:-1]))


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=32, max_size=32).map(DataKey), st.binary(max_size=300))
def test_a_key_rewrapped_under_a_new_master_key_still_opens_the_same_ciphertexts(
    key: DataKey, plaintext: bytes
) -> None:
    sealed = seal_field(key, "event-1", "evidence", plaintext)
    old = masters("2026-06").wrap(key)
    rewrapped = masters("2026-12", "2026-06", "2026-12").rewrap(old)
    assert rewrapped.master_key_id == "2026-12"
    assert rewrapped.wrapped != old.wrapped
    # The old master key may now be removed: the new one alone opens the data key.
    reopened = masters("2026-12").unwrap(rewrapped)
    assert open_field(reopened, "event-1", "evidence", sealed) == plaintext


def test_master_keys_never_show_their_bytes() -> None:
    ring = masters("2026-12")
    assert "master-key" not in repr(ring)
