"""Master keys and stores for the tests of crypto-shredding (shared/erasure/). Test
keys only: they protect nothing."""

import base64
from collections.abc import Collection, Mapping

import orjson

from shared.erasure.data_keys import Erased, WrappedKey
from shared.erasure.master_keys import MasterKeys

# Distinct 32-byte keys, written out so that a failure shows which one was used.
MASTER_KEYS = {
    "2026-06": b"master-key-2026-06-0000000000000",
    "2026-12": b"master-key-2026-12-0000000000000",
}


def master_keys_setting(keys: Mapping[str, bytes] = MASTER_KEYS) -> str:
    """ERASURE_MASTER_KEYS as an operator writes it."""
    return orjson.dumps({k: base64.b64encode(v).decode() for k, v in keys.items()}).decode()


def masters(active: str, *listed: str) -> MasterKeys:
    """The test keys `listed` (default: only `active`), wrapping new keys under `active`."""
    chosen = {k: MASTER_KEYS[k] for k in listed or (active,)}
    return MasterKeys.parse(master_keys_setting(chosen), active)


class InMemoryKeyStore:
    """The key store's contract (tests/support/key_store_contract.py) in a dict, with
    a count of the calls that would be round trips to PostgreSQL."""

    def __init__(self) -> None:
        self.rows: dict[str, WrappedKey] = {}
        self.round_trips = 0

    async def get_or_create(self, candidates: Mapping[str, WrappedKey]) -> dict[str, WrappedKey]:
        self.round_trips += 1
        return {p: self.rows.setdefault(p, wrapped) for p, wrapped in candidates.items()}

    async def fetch(self, pseudonyms: Collection[str]) -> dict[str, WrappedKey | Erased]:
        self.round_trips += 1
        return {p: self.rows.get(p) or Erased(p) for p in pseudonyms}

    async def delete(self, pseudonyms: Collection[str]) -> int:
        self.round_trips += 1
        return sum(self.rows.pop(p, None) is not None for p in set(pseudonyms))
