"""The values of crypto-shredding (docs/erasure.md, section 4): an identifier's data
key, the same key as the database keeps it (wrapped under a master key), and the
answer for an identifier whose key is gone (erased)."""

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DATA_KEY_BYTES = 32


@dataclass(frozen=True)
class DataKey:
    """A 256-bit AES-GCM key of one identifier; its repr never shows the key.

    It keeps the bytes only, not a cipher ready to use: an AESGCM object holds 2.4 KB
    of OpenSSL state (measured), 232 MiB for a cache of 100,000 keys, to save 1.5 µs
    a field (bench/bench_erasure_keys.py)."""

    material: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.material) != DATA_KEY_BYTES:
            raise ValueError(f"a data key has {DATA_KEY_BYTES} bytes, not {len(self.material)}")

    @classmethod
    def generate(cls) -> "DataKey":
        return cls(AESGCM.generate_key(bit_length=DATA_KEY_BYTES * 8))


@dataclass(frozen=True)
class WrappedKey:
    """A data key as `consent.data_keys` keeps it: AES key wrap (RFC 3394) under the
    master key `master_key_id`, which configuration holds and the database never does."""

    master_key_id: str
    wrapped: bytes = field(repr=False)


@dataclass(frozen=True)
class Erased:
    """The identifier has no data key: it was erased, and what was sealed under its
    key can no longer be read. A value, not an error: the audit and the API report
    it as such ("erased subject")."""

    pseudonym: str
