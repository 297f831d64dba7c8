"""The master keys (key-encryption keys) that wrap every data key, read from
configuration and never from the database (docs/erasure.md, section 4).

`ERASURE_MASTER_KEYS` is a JSON object `{"<key id>": "<base64 of 32 bytes>", ...}` and
`ERASURE_ACTIVE_KEY` the id that wraps new keys. Older ids stay listed until
`python -m shared.erasure.rotate` has rewrapped their keys under the active one.
No message here ever shows a key's bytes: they name the key id only."""

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from shared.erasure.data_keys import DataKey, WrappedKey

MASTER_KEY_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class InvalidMasterKeysError(ValueError):
    """ERASURE_MASTER_KEYS or ERASURE_ACTIVE_KEY cannot be used."""


class UnknownMasterKeyError(LookupError):
    """A data key is wrapped under a master key that configuration does not list."""


class UnwrapError(ValueError):
    """A wrapped data key does not open under the master key it names: the key
    configured under that id is not the one that wrapped it, or the row was altered."""


@dataclass(frozen=True)
class MasterKeys:
    keys: Mapping[str, bytes] = field(repr=False)
    active_id: str

    @classmethod
    def parse(cls, setting: str, active_id: str) -> "MasterKeys":
        if not setting.strip():
            raise InvalidMasterKeysError(
                'ERASURE_MASTER_KEYS is not set: a JSON object {"<key id>": "<base64 of '
                f'{MASTER_KEY_BYTES} random bytes>"}} of the keys that wrap the data keys'
            )
        try:
            listed = orjson.loads(setting)
        except orjson.JSONDecodeError:
            raise InvalidMasterKeysError("ERASURE_MASTER_KEYS is not JSON") from None
        if not isinstance(listed, dict) or not listed:
            raise InvalidMasterKeysError(
                "ERASURE_MASTER_KEYS must be a JSON object of at least one key id"
            )
        keys = {key_id: _key_bytes(key_id, value) for key_id, value in listed.items()}
        if len(set(keys.values())) < len(keys):
            # Two ids for one key: a rotation to it would rewrap nothing it protects.
            raise InvalidMasterKeysError("ERASURE_MASTER_KEYS lists the same key under two ids")
        if active_id not in keys:
            raise InvalidMasterKeysError(
                f"ERASURE_ACTIVE_KEY {active_id!r} is not one of ERASURE_MASTER_KEYS's "
                f"ids ({sorted(keys)})"
            )
        return cls(keys, active_id)

    def wrap(self, key: DataKey) -> WrappedKey:
        """Wraps under the active master key."""
        return WrappedKey(self.active_id, aes_key_wrap(self.keys[self.active_id], key.material))

    def unwrap(self, wrapped: WrappedKey) -> DataKey:
        master = self.keys.get(wrapped.master_key_id)
        if master is None:
            raise UnknownMasterKeyError(
                f"a data key is wrapped under master key {wrapped.master_key_id!r}, which "
                f"ERASURE_MASTER_KEYS does not list ({sorted(self.keys)})"
            )
        try:
            return DataKey(aes_key_unwrap(master, wrapped.wrapped))
        except (InvalidUnwrap, ValueError):
            raise UnwrapError(
                f"a data key does not open under master key {wrapped.master_key_id!r}"
            ) from None

    def rewrap(self, wrapped: WrappedKey) -> WrappedKey:
        """The same data key, wrapped under the active master key: every ciphertext
        sealed with it still opens."""
        return self.wrap(self.unwrap(wrapped))


def _key_bytes(key_id: object, value: object) -> bytes:
    if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
        raise InvalidMasterKeysError(
            f"ERASURE_MASTER_KEYS: key id {key_id!r} is not 1-64 letters, digits, '.', "
            "'_', ':' or '-'"
        )
    if not isinstance(value, str):
        raise InvalidMasterKeysError(f"ERASURE_MASTER_KEYS: key {key_id!r} is not a string")
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidMasterKeysError(f"ERASURE_MASTER_KEYS: key {key_id!r} is not base64") from None
    if len(key) != MASTER_KEY_BYTES:
        raise InvalidMasterKeysError(
            f"ERASURE_MASTER_KEYS: key {key_id!r} has {len(key)} bytes, not {MASTER_KEY_BYTES}"
        )
    return key
