"""Seals a personal field with its identifier's data key (docs/erasure.md, section 3):
AES-256-GCM, a fresh 96-bit nonce each time, and the record's id and the field's
name as associated data, so that a ciphertext moved to another record or another
field fails to open rather than lying.

The text form, `v1.<base64url of nonce ‖ ciphertext ‖ tag, unpadded>`, fits a JSON
string. `v1` names all of the above; it carries no key id because the record holds
the identifier's pseudonym beside it, and a data key never changes for its
identifier (a master key's rotation rewraps the data key, never a ciphertext). A
200-byte field seals to 307 characters."""

import base64
import binascii
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.erasure.data_keys import DataKey

VERSION = "v1"
NONCE_BYTES = 12
TAG_BYTES = 16
_SEALED = re.compile(r"v1\.([A-Za-z0-9_-]+)")


class UnreadableFieldError(ValueError):
    """The sealed text is malformed, was altered, belongs to another record or field,
    or was sealed with another key. Never raised for an erased identifier: whoever
    finds its key missing knows that without trying to open anything."""


def seal_field(key: DataKey, record_id: str, field: str, plaintext: bytes) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key.material).encrypt(nonce, plaintext, _associated_data(record_id, field))
    return f"{VERSION}.{base64.urlsafe_b64encode(nonce + sealed).rstrip(b'=').decode()}"


def open_field(key: DataKey, record_id: str, field: str, sealed: str) -> bytes:
    match = _SEALED.fullmatch(sealed)
    if match is None:
        raise UnreadableFieldError(f"not a sealed field of version {VERSION}")
    body = match[1]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise UnreadableFieldError("a sealed field's body is not base64url") from None
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise UnreadableFieldError("a sealed field is shorter than its nonce and tag")
    try:
        return AESGCM(key.material).decrypt(
            raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(record_id, field)
        )
    except InvalidTag:
        raise UnreadableFieldError(
            f"field {field!r} of record {record_id!r} does not open: altered, moved from "
            "another record or field, or sealed with another key"
        ) from None


def _associated_data(record_id: str, field: str) -> bytes:
    # Length-prefixed, so that no two (record, field) pairs give the same bytes:
    # plain concatenation would make ("ab", "c") and ("a", "bc") one.
    record = record_id.encode()
    return b"%b:%d:%b:%b" % (VERSION.encode(), len(record), record, field.encode())
