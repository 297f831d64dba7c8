"""What every key store promises (shared/erasure/key_cache.py's KeyStore), written
once and run against each: the in-memory fake of the unit tests and PostgreSQL.
A subclass provides the `store` fixture; each test uses pseudonyms of its own."""

import uuid
from typing import Any

from shared.erasure.data_keys import DataKey, Erased, WrappedKey
from tests.support.erasure_keys import masters

MASTERS = masters("2026-12")


def pseudonyms(n: int) -> list[str]:
    return [uuid.uuid4().hex for _ in range(n)]


def candidates(names: list[str]) -> dict[str, WrappedKey]:
    return {p: MASTERS.wrap(DataKey.generate()) for p in names}


class KeyStoreContract:
    async def test_get_or_create_stores_a_key_per_new_pseudonym(self, store: Any) -> None:
        offered = candidates(pseudonyms(3))
        assert await store.get_or_create(offered) == offered

    async def test_get_or_create_keeps_the_first_key_and_is_idempotent(self, store: Any) -> None:
        names = pseudonyms(2)
        first = await store.get_or_create(candidates(names))
        again = await store.get_or_create(candidates([*names, *pseudonyms(1)]))
        assert {p: again[p] for p in names} == first
        assert len(again) == 3

    async def test_fetch_reads_a_missing_key_as_erased(self, store: Any) -> None:
        kept, never = pseudonyms(2)
        stored = await store.get_or_create(candidates([kept]))
        assert await store.fetch([kept, never]) == {kept: stored[kept], never: Erased(never)}

    async def test_delete_counts_the_keys_it_deleted_and_they_read_as_erased(
        self, store: Any
    ) -> None:
        names = pseudonyms(3)
        await store.get_or_create(candidates(names[:2]))
        assert await store.delete(names) == 2
        assert await store.fetch(names) == {p: Erased(p) for p in names}
        assert await store.delete(names) == 0

    async def test_a_key_created_after_an_erasure_is_a_new_one(self, store: Any) -> None:
        (name,) = pseudonyms(1)
        before = await store.get_or_create(candidates([name]))
        await store.delete([name])
        after = await store.get_or_create(candidates([name]))
        assert after[name] != before[name]
