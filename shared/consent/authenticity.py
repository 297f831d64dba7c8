"""Proves that an event claiming to come from WhatsApp was written by the service that
heard it: only then may it lift a STOP (policy clause 4.4, "only the user can lift
it"). Without this, any client of the broker could write an OptedIn with source
`whatsapp_reply` for any number, and the audit would replay the forgery as truth.

The writer (inbound; the dispatcher's sender for the refusals it hears) signs the
record's value with an Ed25519 key of its own, in the `signature.ed25519` header:
`<key id>:<base64 signature>`. The readers (the projector, the rebuild, the audit)
hold the public keys, several at once so that keys can be rotated, each optionally
limited to the event types its writer makes: a leaked sender key then cannot lift a
STOP.

Which events must be signed: those whose source names WhatsApp. Of those, the ones
that only ever take permission away (OptedOut, a revocation, the platform's stops and
failures) are applied unsigned by default: a forged STOP can only stop messages,
and the contract's freshness promise is stated for any OptedOut acknowledged on
consent.events.v1. Such an event is marked unauthenticated, so that an unsigned
OptedOut gets no confirmation (shared/dispatch/rules.py): a forger could otherwise
send one text of their choosing per forged STOP. `UNSIGNED_RESTRICTIONS=refuse`
refuses them outright.

A log written before signing was deployed holds unsigned events from WhatsApp that
were true when written. `EVENT_SIGNATURES_FROM` names, per partition, the first offset
from which signatures are required; the records before it count as authenticated."""

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

    def public_setting(self, types: Iterable[EventType] | None = None) -> str:
        """The EVENT_VERIFY_KEYS entry of this key, limited to `types` when given."""
        raw = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        entry = f"{self.key_id}:{base64.b64encode(raw).decode()}"
        if types is None:
            return entry
        return entry + ":" + "+".join(sorted(kind.value for kind in types))

    def header(self, value: bytes) -> tuple[str, bytes]:
        signature = self.private.sign(_CONTEXT + value)
        return SIGNATURE_HEADER, f"{self.key_id}:{base64.b64encode(signature).decode()}".encode()


@dataclass(frozen=True)
class TrustedKey:
    """A public key, and the event types it may sign (None: any)."""

    public: Ed25519PublicKey
    types: frozenset[EventType] | None = None

    def may_sign(self, kind: EventType) -> bool:
        return self.types is None or kind in self.types


def _types(text: str, setting: str, key_id: str) -> frozenset[EventType]:
    names = [n.strip() for n in text.split("+") if n.strip()]
    known = {kind.value: kind for kind in EventType}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise InvalidKeyError(
            f"{setting}: key {key_id!r} names no event type or an unknown one "
            f"({', '.join(unknown) or 'none'}); use '+' between types such as "
            "MarketingStopped+DeliveryFailed"
        )
    return frozenset(known[n] for n in names)


@dataclass(frozen=True)
class Keyring:
    """The public keys whose signatures are believed, by key id."""

    keys: Mapping[str, TrustedKey] = field(default_factory=dict)

    @classmethod
    def parse(cls, setting: str, name: str = "EVENT_VERIFY_KEYS") -> "Keyring":
        """Reads `<key id>:<base64 public key>[:<Type>+<Type>...]` entries, comma-separated;
        the types, when given, are all that key may sign."""
        keys: dict[str, TrustedKey] = {}
        for entry in (e for e in setting.split(",") if e.strip()):
            key_id, rest = _split(entry, name)
            encoded, limited, types = rest.partition(":")
            if key_id in keys:
                raise InvalidKeyError(f"{name}: key id {key_id!r} is given twice")
            public = Ed25519PublicKey.from_public_bytes(_key_bytes(encoded, name, key_id))
            keys[key_id] = TrustedKey(public, _types(types, name, key_id) if limited else None)
        return cls(keys)

    def problem(
        self,
        value: bytes,
        headers: Iterable[tuple[str, bytes | None]],
        kind: EventType | None = None,
    ) -> str | None:
        """Says why the value is not signed by a key of the ring that may sign an event
        of type `kind`, or None when it is."""
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
            key.public.verify(base64.b64decode(encoded, validate=True), _CONTEXT + value)
        except (binascii.Error, ValueError, InvalidSignature):
            return f"the signature does not verify with key {name!r}"
        if kind is not None and not key.may_sign(kind):
            return f"key {name!r} may not sign a {kind.value}"
        return None


def parse_positions(setting: str, name: str = "EVENT_SIGNATURES_FROM") -> dict[int, int]:
    """Reads `<partition>:<offset>` pairs, comma-separated."""
    positions: dict[int, int] = {}
    for entry in (e.strip() for e in setting.split(",") if e.strip()):
        partition, sep, offset = entry.partition(":")
        if not (sep and partition.strip().isdigit() and offset.strip().isdigit()):
            raise InvalidKeyError(f"{name}: expected '<partition>:<offset>', got {entry[:64]!r}")
        if int(partition) in positions:
            raise InvalidKeyError(f"{name}: partition {int(partition)} is given twice")
        positions[int(partition)] = int(offset)
    return positions


@dataclass(frozen=True)
class Trust:
    """What the readers of the log believe: the keyring, whether a restriction that
    claims WhatsApp as its source counts unsigned, and where signing began."""

    keyring: Keyring
    unsigned_restrictions: UnsignedRestrictions = UnsignedRestrictions.APPLY
    # consent.events.v1's partition -> the first offset whose events must be signed.
    signed_from: Mapping[int, int] = field(default_factory=dict)

    def must_verify(self, event: ConsentEvent) -> bool:
        if event.source not in SIGNED_SOURCES:
            return False
        return (
            event.type not in RESTRICTING
            or self.unsigned_restrictions is UnsignedRestrictions.REFUSE
        )

    def judge(
        self,
        event: ConsentEvent,
        value: bytes,
        headers: Iterable[tuple[str, bytes | None]],
        position: tuple[int, int] | None = None,
    ) -> Rejected | bool:
        """Refuses an event that claims WhatsApp without proof; otherwise says whether
        it is authenticated (False: a restriction taken unsigned). `position` is the
        record's (partition, offset) in consent.events.v1, for the cutover."""
        if event.source not in SIGNED_SOURCES:
            return True
        headers = list(headers)
        before_signing = position is not None and position[1] < self.signed_from.get(position[0], 0)
        if before_signing and not any(name == SIGNATURE_HEADER for name, _ in headers):
            return True  # written before signing began: as true as it was then
        problem = self.keyring.problem(value, headers, event.type)
        if problem is None:
            return True
        if not self.must_verify(event):
            return False
        return Rejected(
            reason=UNAUTHENTICATED_SOURCE,
            detail=(
                f"a {event.type.value} with source {event.source!r} must be signed by the "
                f"service that heard WhatsApp ({problem}); it changes nothing"
            ),
        )
