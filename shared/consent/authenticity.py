"""Proves that an event claiming to come from WhatsApp was written by the service that
heard it: only then may it lift a STOP (policy clause 4.4, "only the user can lift
it"). Without this, any client of the broker could write an OptedIn with source
`whatsapp_reply` for any number, and the audit would replay the forgery as truth.

The writer (inbound; the dispatcher's sender for the refusals it hears) signs the
record's value with an Ed25519 key of its own, in the `signature.ed25519` header:
`<key id>:<base64 signature>`. The readers (the projector, the rebuild, the audit)
hold the public keys, several at once so that keys can be rotated.

Which events must be signed: those whose source names WhatsApp. Of those, the ones
that only ever take permission away (OptedOut, a revocation, the platform's stops and
failures) are applied unsigned by default: a forged STOP can only stop messages,
and the contract's freshness promise is stated for any OptedOut acknowledged on
consent.events.v1. `UNSIGNED_RESTRICTIONS=refuse` refuses those too."""

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shared.contract.events import (
    WHATSAPP_REPLY,
    WHATSAPP_STATUS,
    WHATSAPP_USER_PREFERENCES,
    WHATSAPP_WEBHOOK,
    ConsentEvent,
    EventType,
)
from shared.rejection import Rejected

SIGNATURE_HEADER = "signature.ed25519"
UNAUTHENTICATED_SOURCE = "unauthenticated_source"

SIGNED_SOURCES = frozenset(
    {WHATSAPP_REPLY, WHATSAPP_WEBHOOK, WHATSAPP_USER_PREFERENCES, WHATSAPP_STATUS}
)
RESTRICTING = frozenset(
    {
        EventType.OPTED_OUT,
        EventType.CONSENT_REVOKED,
        EventType.MARKETING_STOPPED,
        EventType.DELIVERY_LIMITED,
        EventType.DELIVERY_FAILED,
    }
)

# What is signed is this prefix and the value: a signature made for another use of
# the same key can never pass for an event's.
_CONTEXT = b"consent.events.v1 signed event\n"
_KEY_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class InvalidKeyError(ValueError):
    """A key setting that cannot be read; the message says which part and why."""


class UnsignedRestrictions(StrEnum):
    APPLY = "apply"
    REFUSE = "refuse"


def _key_id(text: str, setting: str) -> str:
    if not text or len(text) > 64 or not set(text) <= _KEY_ID_CHARS:
        raise InvalidKeyError(
            f"{setting}: key id {text[:64]!r} must be 1-64 letters, digits, '-', '_' or '.'"
        )
    return text


def _key_bytes(text: str, setting: str, key_id: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidKeyError(f"{setting}: key {key_id!r} is not base64") from None
    if len(raw) != 32:
        raise InvalidKeyError(f"{setting}: key {key_id!r} has {len(raw)} bytes, not 32")
    return raw


def _split(entry: str, setting: str) -> tuple[str, str]:
    key_id, sep, encoded = entry.strip().partition(":")
    if not sep:
        raise InvalidKeyError(f"{setting}: expected '<key id>:<base64 key>', got no ':'")
    return _key_id(key_id, setting), encoded.strip()


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    private: Ed25519PrivateKey

    @classmethod
    def parse(cls, setting: str, name: str = "signing key") -> "SigningKey":
        """Reads `<key id>:<base64 of the 32-byte private key>`."""
        key_id, encoded = _split(setting, name)
        raw = _key_bytes(encoded, name, key_id)
        return cls(key_id, Ed25519PrivateKey.from_private_bytes(raw))

    @classmethod
    def generate(cls, key_id: str) -> "SigningKey":
        return cls(_key_id(key_id, "key id"), Ed25519PrivateKey.generate())

    def setting(self) -> str:
        raw = self.private.private_bytes_raw()
        return f"{self.key_id}:{base64.b64encode(raw).decode()}"

    def public_setting(self) -> str:
        raw = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return f"{self.key_id}:{base64.b64encode(raw).decode()}"

    def header(self, value: bytes) -> tuple[str, bytes]:
        signature = self.private.sign(_CONTEXT + value)
        return SIGNATURE_HEADER, f"{self.key_id}:{base64.b64encode(signature).decode()}".encode()


@dataclass(frozen=True)
class Keyring:
    """The public keys whose signatures are believed, by key id."""

    keys: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)

    @classmethod
    def parse(cls, setting: str, name: str = "EVENT_VERIFY_KEYS") -> "Keyring":
        """Reads `<key id>:<base64 public key>` entries, comma-separated."""
        keys: dict[str, Ed25519PublicKey] = {}
        for entry in (e for e in setting.split(",") if e.strip()):
            key_id, encoded = _split(entry, name)
            if key_id in keys:
                raise InvalidKeyError(f"{name}: key id {key_id!r} is given twice")
            keys[key_id] = Ed25519PublicKey.from_public_bytes(_key_bytes(encoded, name, key_id))
        return cls(keys)

    def problem(self, value: bytes, headers: Iterable[tuple[str, bytes | None]]) -> str | None:
        """Says why the value is not signed by a key of the ring, or None when it is."""
        signatures = [v for k, v in headers if k == SIGNATURE_HEADER]
        if not signatures:
            return f"no {SIGNATURE_HEADER} header"
        if len(signatures) > 1:
            return f"{len(signatures)} {SIGNATURE_HEADER} headers"
        if not isinstance(signatures[0], bytes):  # Kafka allows a header without a value
            return "a malformed signature"
        key_id, sep, encoded = signatures[0].partition(b":")
        name = key_id.decode(errors="replace")
        key = self.keys.get(name) if sep else None
        if key is None:
            return f"signed by no known key ({name[:64]!r})" if sep else "a malformed signature"
        try:
            key.verify(base64.b64decode(encoded, validate=True), _CONTEXT + value)
        except (binascii.Error, ValueError, InvalidSignature):
            return f"the signature does not verify with key {name!r}"
        return None


@dataclass(frozen=True)
class Trust:
    """What the readers of the log believe: the keyring, and whether a restriction
    that claims WhatsApp as its source counts unsigned."""

    keyring: Keyring
    unsigned_restrictions: UnsignedRestrictions = UnsignedRestrictions.APPLY

    def must_verify(self, event: ConsentEvent) -> bool:
        if event.source not in SIGNED_SOURCES:
            return False
        return (
            event.type not in RESTRICTING
            or self.unsigned_restrictions is UnsignedRestrictions.REFUSE
        )

    def judge(
        self, event: ConsentEvent, value: bytes, headers: Iterable[tuple[str, bytes | None]]
    ) -> Rejected | None:
        """Refuses an event that claims WhatsApp without proof; None lets it count."""
        if not self.must_verify(event):
            return None
        problem = self.keyring.problem(value, headers)
        if problem is None:
            return None
        return Rejected(
            reason=UNAUTHENTICATED_SOURCE,
            detail=(
                f"a {event.type.value} with source {event.source!r} must be signed by the "
                f"service that heard WhatsApp ({problem}); it changes nothing"
            ),
        )
