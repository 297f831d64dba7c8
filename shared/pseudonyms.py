"""Stands for an identifier where its raw value must not be kept (policy clause 5):
HMAC-SHA256 under a key of our own, `PSEUDONYM_KEY`. Not a plain hash: phone numbers
are few enough to hash them all, and a plain hash would then read them back."""

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass


class InvalidPseudonymKeyError(ValueError):
    """PSEUDONYM_KEY is missing or too short to be a key."""


MIN_KEY_BYTES = 32


@dataclass(frozen=True)
class Pseudonymizer:
    key: bytes

    @classmethod
    def parse(cls, setting: str, name: str = "PSEUDONYM_KEY") -> "Pseudonymizer":
        """Reads the key as base64 of at least 32 random bytes."""
        if not setting.strip():
            raise InvalidPseudonymKeyError(
                f"{name} is not set (base64 of 32 random bytes; make up and make run "
                "generate a local one into .local/secrets.env)"
            )
        try:
            key = base64.b64decode(setting.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidPseudonymKeyError(f"{name} is not base64") from None
        if len(key) < MIN_KEY_BYTES:
            raise InvalidPseudonymKeyError(
                f"{name} has {len(key)} bytes, fewer than {MIN_KEY_BYTES}"
            )
        return cls(key)

    def of(self, identifier: str) -> str:
        """The identifier's pseudonym, 64 hex digits; the same identifier, the same one."""
        return hmac.new(self.key, identifier.encode(), hashlib.sha256).hexdigest()
