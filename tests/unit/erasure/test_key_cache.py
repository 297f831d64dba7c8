"""The services' data keys (shared/erasure/key_cache.py), on the in-memory store: a key
is created once per identifier, served from memory for a bounded time and a bounded
count, and an erased one reads as erased in every process once that time is out."""

import pytest

from shared.erasure.data_keys import DataKey, Erased
from shared.erasure.field_cipher import open_field, seal_field
from shared.erasure.key_cache import CachedDataKeys
from tests.support.erasure_keys import InMemoryKeyStore, masters
from tests.support.key_store_contract import KeyStoreContract

MASTERS = masters("2026-12")
TTL = 600.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def process(store: InMemoryKeyStore, clock: Clock, max_size: int = 100) -> CachedDataKeys:
    """One service process's keys over the shared store."""
    return CachedDataKeys(store, MASTERS, max_size=max_size, ttl_seconds=TTL, timer=clock)


class TestInMemoryKeyStore(KeyStoreContract):
    """The fake keeps the contract that PostgreSQL keeps (tests/integration/test_data_keys.py)."""

    @pytest.fixture
    def store(self) -> InMemoryKeyStore:
        return InMemoryKeyStore()


async def test_an_identifier_gets_one_key_however_often_it_is_asked_for() -> None:
    store, clock = InMemoryKeyStore(), Clock()
    first = await process(store, clock).for_writing(["p1", "p2"])
    again = await process(store, clock).for_writing(["p2", "p1", "p3"])
    assert {p: again[p] for p in ("p1", "p2")} == first
    assert set(store.rows) == {"p1", "p2", "p3"}


async def test_cached_keys_cost_no_round_trip_until_their_time_is_out() -> None:
    store, clock = InMemoryKeyStore(), Clock()
    keys = process(store, clock)
    await keys.for_writing(["p1", "p2"])
    clock.now = TTL - 1
    await keys.for_writing(["p1"])
    await keys.for_reading(["p2"])
    assert store.round_trips == 1
    clock.now = TTL
    await keys.for_reading(["p1"])
    assert store.round_trips == 2


async def test_a_key_another_process_created_is_unwrapped_not_replaced() -> None:
    store, clock = InMemoryKeyStore(), Clock()
    writer, reader = process(store, clock), process(store, clock)
    sealed = seal_field((await writer.for_writing(["p1"]))["p1"], "e1", "evidence", b"{}")
    key = (await reader.for_writing(["p1"]))["p1"]
    assert open_field(key, "e1", "evidence", sealed) == b"{}"


async def test_an_erased_key_reads_as_erased_here_at_once_and_elsewhere_within_the_ttl() -> None:
    store, clock = InMemoryKeyStore(), Clock()
    projector, api, eraser = process(store, clock), process(store, clock), process(store, clock)
    await projector.for_writing(["p1", "p2"])
    assert isinstance((await api.for_reading(["p1"]))["p1"], DataKey)
    clock.now = 100
    assert await eraser.erase(["p1"]) == 1
    assert await eraser.for_reading(["p1"]) == {"p1": Erased("p1")}
    # The API read p1 at 0: it may still open p1's fields until 0 + TTL, never after.
    clock.now = TTL - 0.001
    assert isinstance((await api.for_reading(["p1"]))["p1"], DataKey)
    clock.now = TTL
    found = await api.for_reading(["p1", "p2"])
    assert found["p1"] == Erased("p1")
    assert isinstance(found["p2"], DataKey)


async def test_erase_forgets_this_process_own_copy_at_once() -> None:
    store, clock = InMemoryKeyStore(), Clock()
    projector = process(store, clock)
    await projector.for_writing(["p1"])
    assert await projector.erase(["p1", "never-seen"]) == 1
    assert await projector.for_reading(["p1"]) == {"p1": Erased("p1")}


async def test_the_least_recently_used_keys_leave_a_full_cache() -> None:
    store, clock = InMemoryKeyStore(), Clock()
    keys = process(store, clock, max_size=2)
    await keys.for_writing(["p1", "p2"])
    await keys.for_reading(["p1"])  # p2 is now the least recently used
    await keys.for_writing(["p3"])
    trips = store.round_trips
    await keys.for_reading(["p1", "p3"])
    assert store.round_trips == trips
    await keys.for_reading(["p2"])
    assert store.round_trips == trips + 1


async def test_an_erased_identifier_is_not_remembered_as_erased() -> None:
    # A new event for the person after the erasure creates a key the next read finds.
    store, clock = InMemoryKeyStore(), Clock()
    keys = process(store, clock)
    assert await keys.for_reading(["p1"]) == {"p1": Erased("p1")}
    await process(store, clock).for_writing(["p1"])
    assert isinstance((await keys.for_reading(["p1"]))["p1"], DataKey)
