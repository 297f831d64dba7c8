"""The data keys as the services will use them: unwrapped, and kept in memory for a
bounded time (docs/erasure.md, section 4).

A key stays cached at most `ttl_seconds` after it was read from the store, however
often it is used since: an erasure that deletes it is therefore honoured by every
process within that time, which the erasure job waits out (plus the time of one
read) before it reports the erasure done. `erase` also forgets the keys here at once.
The size bound keeps the least recently used keys (cachetools' TTLCache is an LRU
whose entries also expire)."""

import time
from collections.abc import Callable, Collection, Mapping
from typing import Protocol

from cachetools import TTLCache

from shared.erasure.data_keys import DataKey, Erased, WrappedKey
from shared.erasure.master_keys import MasterKeys

DEFAULT_CACHE_SIZE = 100_000
DEFAULT_CACHE_SECONDS = 600.0


class KeyStore(Protocol):
    """What the cache needs of a store: `PostgresKeyStore`, or a fake in the tests."""

    async def get_or_create(
        self, candidates: Mapping[str, WrappedKey]
    ) -> dict[str, WrappedKey]: ...

    async def fetch(self, pseudonyms: Collection[str]) -> dict[str, WrappedKey | Erased]: ...

    async def delete(self, pseudonyms: Collection[str]) -> int: ...


class CachedDataKeys:
    def __init__(
        self,
        store: KeyStore,
        masters: MasterKeys,
        *,
        max_size: int = DEFAULT_CACHE_SIZE,
        ttl_seconds: float = DEFAULT_CACHE_SECONDS,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._masters = masters
        self._cache: TTLCache[str, DataKey, float] = TTLCache(max_size, ttl_seconds, timer)

    async def for_writing(self, pseudonyms: Collection[str]) -> dict[str, DataKey]:
        """The key of each pseudonym, created where it has none (an identifier first
        seen): one statement for all the keys not cached."""
        keys, missing = self._cached(pseudonyms)
        if missing:
            fresh = {p: DataKey.generate() for p in missing}
            candidates = {p: self._masters.wrap(key) for p, key in fresh.items()}
            stored = await self._store.get_or_create(candidates)
            for pseudonym, wrapped in stored.items():
                # Ours if our candidate won: no need to unwrap what we just wrapped.
                ours = wrapped == candidates[pseudonym]
                keys[pseudonym] = fresh[pseudonym] if ours else self._masters.unwrap(wrapped)
                self._cache[pseudonym] = keys[pseudonym]
        return keys

    async def for_reading(self, pseudonyms: Collection[str]) -> dict[str, DataKey | Erased]:
        """The key of each pseudonym, or Erased where it has none. An erased one is
        not cached: it is rare, and a key could only come back by a new event."""
        keys, missing = self._cached(pseudonyms)
        found: dict[str, DataKey | Erased] = dict(keys)
        if missing:
            for pseudonym, stored in (await self._store.fetch(missing)).items():
                if isinstance(stored, Erased):
                    found[pseudonym] = stored
                else:
                    found[pseudonym] = self._cache[pseudonym] = self._masters.unwrap(stored)
        return found

    async def erase(self, pseudonyms: Collection[str]) -> int:
        """Deletes the keys of these pseudonyms, here and in the store; returns how
        many the store held. Other processes forget them within the cache's time."""
        # The store first: forgetting first would let a read here cache the key
        # again from the store before the delete.
        deleted = await self._store.delete(pseudonyms)
        for pseudonym in pseudonyms:
            self._cache.pop(pseudonym, None)
        return deleted

    def forget(self, pseudonyms: Collection[str]) -> None:
        """Drops these keys from this process's cache only: after an erasure that
        deleted them from the store (consent.erase_person), so that nothing here
        seals with them again."""
        for pseudonym in pseudonyms:
            self._cache.pop(pseudonym, None)

    def _cached(self, pseudonyms: Collection[str]) -> tuple[dict[str, DataKey], list[str]]:
        keys: dict[str, DataKey] = {}
        missing: list[str] = []
        for pseudonym in pseudonyms:
            key = self._cache.get(pseudonym)
            if key is None:
                missing.append(pseudonym)
            else:
                keys[pseudonym] = key
        return keys, missing
