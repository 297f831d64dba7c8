"""A sealed field opens only with its key, in its record, as its field, unaltered
(shared/erasure/field_cipher.py), whatever the bytes (hypothesis)."""

import base64

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shared.erasure.data_keys import DataKey
from shared.erasure.field_cipher import UnreadableFieldError, open_field, seal_field

PROPERTY = settings(max_examples=200, deadline=None)

keys = st.binary(min_size=32, max_size=32).map(DataKey)
plaintexts = st.binary(max_size=512)
record_ids = st.text(max_size=40)
fields = st.sampled_from(["subject", "linked", "evidence", "timezone", "body"]) | st.text()


def _raw(sealed: str) -> bytes:
    body = sealed.removeprefix("v1.")
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def _text(raw: bytes) -> str:
    return "v1." + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@PROPERTY
@given(keys, record_ids, fields, plaintexts)
def test_a_sealed_field_opens_to_what_was_sealed(
    key: DataKey, record: str, field: str, plaintext: bytes
) -> None:
    sealed = seal_field(key, record, field, plaintext)
    assert sealed.startswith("v1.")
    assert open_field(key, record, field, sealed) == plaintext


@PROPERTY
@given(keys, plaintexts, st.data())
def test_any_flipped_byte_fails_to_open(
    key: DataKey, plaintext: bytes, data: st.DataObject
) -> None:
    raw = bytearray(_raw(seal_field(key, "event-1", "evidence", plaintext)))
    at = data.draw(st.integers(0, len(raw) - 1), label="byte")
    raw[at] ^= data.draw(st.integers(1, 255), label="mask")
    with pytest.raises(UnreadableFieldError):
        open_field(key, "event-1", "evidence", _text(bytes(raw)))


@PROPERTY
@given(keys, plaintexts, record_ids, fields, record_ids, fields)
def test_a_field_moved_to_another_record_or_field_fails_to_open(
    key: DataKey, plaintext: bytes, record: str, field: str, other_record: str, other_field: str
) -> None:
    assume((record, field) != (other_record, other_field))
    sealed = seal_field(key, record, field, plaintext)
    with pytest.raises(UnreadableFieldError):
        open_field(key, other_record, other_field, sealed)


def test_the_boundary_between_record_and_field_is_bound_too() -> None:
    key = DataKey.generate()
    sealed = seal_field(key, "ab", "c", b"+79161234567")
    with pytest.raises(UnreadableFieldError):
        open_field(key, "a", "bc", sealed)


@PROPERTY
@given(keys, keys, plaintexts)
def test_another_key_fails_to_open(key: DataKey, other: DataKey, plaintext: bytes) -> None:
    assume(key != other)
    with pytest.raises(UnreadableFieldError):
        open_field(other, "event-1", "evidence", seal_field(key, "event-1", "evidence", plaintext))


def test_each_seal_takes_a_fresh_nonce() -> None:
    key = DataKey.generate()
    sealed = {seal_field(key, "event-1", "timezone", b"Europe/Moscow") for _ in range(100)}
    assert len(sealed) == 100


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("v2.AAAA", id="unknown-version"),
        pytest.param("v1.", id="no-body"),
        pytest.param("v1.AAAA", id="shorter-than-nonce-and-tag"),
        pytest.param("v1." + "A" * 37 + "*", id="not-base64url"),
        pytest.param("v1." + "A" * 37, id="impossible-length"),
        pytest.param(seal_field(DataKey(b"k" * 32), "event-1", "evidence", b"") + "\n", id="eol"),
    ],
)
def test_a_malformed_text_is_unreadable_rather_than_an_error_of_its_own(text: str) -> None:
    with pytest.raises(UnreadableFieldError):
        open_field(DataKey(b"k" * 32), "event-1", "evidence", text)


def test_a_data_key_never_shows_itself() -> None:
    key = DataKey(b"k" * 32)
    assert "kkkk" not in repr(key)
    assert "kkkk" not in str(key)
