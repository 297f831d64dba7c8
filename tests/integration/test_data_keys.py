"""The data keys on the real PostgreSQL (shared/erasure/key_store.py, migration
consent/007): the store keeps the contract the in-memory fake keeps, concurrent
writers agree on one key per identifier without deadlocking, an erased key reads
as erased, the rotation rewraps every key once, and each service role may do
with the keys what docs/security.md says and nothing more.

Each test uses pseudonyms of its own in a private database; the rotation, which
reads the whole table, gets a database of its own each time."""

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from random import Random
from typing import Any

import asyncpg
import pytest

from shared.db.roles import API_URL, AUDIT_URL, DISPATCHER_URL, PROJECTOR_URL, without_role_urls
from shared.erasure.data_keys import DataKey, Erased
from shared.erasure.field_cipher import open_field, seal_field
from shared.erasure.key_cache import CachedDataKeys
from shared.erasure.key_store import PostgresKeyStore
from shared.erasure.rotate import RotationRefusedError, rewrap_all
from shared.settings import LOCAL_DATABASE_URL
from tests.support.db_roles import local_role_urls
from tests.support.erasure_keys import master_keys_setting, masters
from tests.support.key_store_contract import MASTERS, KeyStoreContract, candidates, pseudonyms
from tests.support.private_db import database_of_our_own
from tests.support.services import ROOT

pytestmark = pytest.mark.integration

OWNER_URL = os.environ.get("DATABASE_URL") or LOCAL_DATABASE_URL
ROLES = {
    "projector": PROJECTOR_URL,
    "api": API_URL,
    "dispatcher": DISPATCHER_URL,
    "audit": AUDIT_URL,
}


@pytest.fixture(scope="module")
async def database() -> AsyncIterator[str]:
    async with database_of_our_own(OWNER_URL) as url:
        yield url


@pytest.fixture(scope="module")
async def owner(database: str) -> AsyncIterator[Any]:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=8)
    yield pool
    await pool.close()


class TestPostgresKeyStore(KeyStoreContract):
    @pytest.fixture
    def store(self, owner: Any) -> PostgresKeyStore:
        return PostgresKeyStore(owner)


@asynccontextmanager
async def connections(url: str, n: int) -> AsyncIterator[list[Any]]:
    opened = [await asyncpg.connect(url) for _ in range(n)]
    try:
        yield opened
    finally:
        for conn in opened:
            await conn.close()


async def waits_for_a_lock(watcher: Any, conn: Any) -> None:
    pid = conn.get_server_pid()
    for _ in range(200):
        state = await watcher.fetchval(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid
        )
        if state == "Lock":
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the second writer never waited for the first")


class Counted:
    """A connection that counts the statements it is given."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.statements = 0

    async def fetch(self, *args: Any) -> Any:
        self.statements += 1
        return await self.conn.fetch(*args)


async def test_a_writer_that_loses_the_race_is_given_the_winners_key(database: str) -> None:
    first, shared, second_only = pseudonyms(3)
    async with connections(database, 3) as (a, b, watcher):
        winning = a.transaction()
        await winning.start()
        won = await PostgresKeyStore(a).get_or_create(candidates([first, shared]))
        loser = Counted(b)
        losing = asyncio.create_task(
            PostgresKeyStore(loser).get_or_create(candidates([shared, second_only]))
        )
        await waits_for_a_lock(watcher, b)
        await winning.commit()
        lost = await losing
    assert lost[shared] == won[shared]
    assert set(lost) == {shared, second_only}
    # Its first statement's snapshot could not see the winner's key: a second read did.
    assert loser.statements == 2


async def test_writers_of_overlapping_batches_wait_for_each_other_rather_than_deadlock(
    database: str,
) -> None:
    low, high = sorted(pseudonyms(2))
    async with connections(database, 3) as (a, b, watcher):
        in_a, in_b = a.transaction(), b.transaction()
        await in_a.start()
        await in_b.start()
        await PostgresKeyStore(a).get_or_create(candidates([low]))
        # Asked in the other order, b still inserts `low` first, and waits there
        # before it holds `high`, which a is about to take.
        reversed_order = dict(reversed(candidates([low, high]).items()))
        waiting = asyncio.create_task(PostgresKeyStore(b).get_or_create(reversed_order))
        await waits_for_a_lock(watcher, b)
        taken = await PostgresKeyStore(a).get_or_create(candidates([high]))
        await in_a.commit()
        given = await waiting
        await in_b.commit()
    assert given[high] == taken[high]


async def test_concurrent_processes_agree_on_one_key_per_identifier(
    database: str, owner: Any
) -> None:
    names = pseudonyms(300)
    rng = Random(16)
    batches = [rng.sample(names, 150) for _ in range(8)]
    processes = [CachedDataKeys(PostgresKeyStore(owner), MASTERS) for _ in batches]
    results = await asyncio.gather(
        *(keys.for_writing(batch) for keys, batch in zip(processes, batches, strict=True))
    )
    agreed: dict[str, DataKey] = {}
    for result in results:
        for name, key in result.items():
            assert agreed.setdefault(name, key) == key
    stored = await owner.fetchval(
        "SELECT count(*) FROM consent.data_keys WHERE pseudonym = ANY($1::text[])", names
    )
    assert stored == len(agreed) == len(set().union(*batches))


async def test_an_erased_persons_fields_read_as_erased_in_every_process(owner: Any) -> None:
    phone, bsuid, someone_else = pseudonyms(3)
    projector = CachedDataKeys(PostgresKeyStore(owner), MASTERS)
    keys = await projector.for_writing([phone, bsuid, someone_else])
    sealed = seal_field(keys[someone_else], "event-1", "evidence", b'{"form": "R-1042"}')
    eraser = CachedDataKeys(PostgresKeyStore(owner), MASTERS)
    assert await eraser.erase([phone, bsuid]) == 2
    api = CachedDataKeys(PostgresKeyStore(owner), MASTERS)
    found = await api.for_reading([phone, bsuid, someone_else])
    assert (found[phone], found[bsuid]) == (Erased(phone), Erased(bsuid))
    other_key = found[someone_else]
    assert isinstance(other_key, DataKey)
    assert open_field(other_key, "event-1", "evidence", sealed) == b'{"form": "R-1042"}'


@asynccontextmanager
async def keys_under_old_master(count: int) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """A database of its own whose `count` keys are wrapped under 2026-06, with a
    field sealed under each (its pseudonym as the plaintext)."""
    async with database_of_our_own(OWNER_URL) as url:
        conn = await asyncpg.connect(url)
        try:
            names = pseudonyms(count)
            keys = await CachedDataKeys(PostgresKeyStore(conn), masters("2026-06")).for_writing(
                names
            )
        finally:
            await conn.close()
        yield url, {p: seal_field(keys[p], "event-1", "subject", p.encode()) for p in names}


async def test_rotation_rewraps_every_key_and_a_second_run_does_nothing() -> None:
    both = masters("2026-12", "2026-06", "2026-12")
    async with keys_under_old_master(25) as (url, sealed):
        conn = await asyncpg.connect(url)
        try:
            store = PostgresKeyStore(conn)
            await CachedDataKeys(store, both).for_writing(pseudonyms(3))  # already new
            first = await rewrap_all(store, both, batch=7)
            again = await rewrap_all(store, both, batch=7)
            after = await store.count_by_master()
            # Only the new master key is needed now: the old one may be removed.
            opened = await CachedDataKeys(store, masters("2026-12")).for_reading(list(sealed))
        finally:
            await conn.close()
    assert (first.rewrapped, first.already_active, first.left) == (25, 3, {})
    assert (again.rewrapped, again.already_active, again.changed_meanwhile) == (0, 28, 0)
    assert after == {"2026-12": 28}
    for name, text in sealed.items():
        key = opened[name]
        assert isinstance(key, DataKey)
        assert open_field(key, "event-1", "subject", text) == name.encode()


async def test_rotation_refuses_keys_under_an_unlisted_master_key_and_changes_nothing() -> None:
    async with keys_under_old_master(5) as (url, _):
        conn = await asyncpg.connect(url)
        try:
            store = PostgresKeyStore(conn)
            with pytest.raises(RotationRefusedError, match=r"'2026-06' \(5 keys\)"):
                await rewrap_all(store, masters("2026-12"))
            assert await store.count_by_master() == {"2026-06": 5}
        finally:
            await conn.close()


async def rotate_command(url: str, *listed: str) -> tuple[int, str]:
    env = without_role_urls(os.environ) | {
        "DATABASE_URL": url,
        "ERASURE_MASTER_KEYS": master_keys_setting(masters(listed[0], *listed).keys),
        "ERASURE_ACTIVE_KEY": listed[0],
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shared.erasure.rotate",
        "--batch",
        "4",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, output.decode()


async def test_the_rotate_command_refuses_by_name_then_rewraps_with_a_summary() -> None:
    async with keys_under_old_master(10) as (url, _):
        refused = await rotate_command(url, "2026-12")
        rotated = await rotate_command(url, "2026-12", "2026-06")
        repeated = await rotate_command(url, "2026-12", "2026-06")
    assert refused[0] == 1
    assert "'2026-06' (10 keys)" in refused[1]
    assert rotated == (
        0,
        "rotate: 10 data keys rewrapped under '2026-12', 0 were under it already, "
        "0 erased or replaced meanwhile; none under another master key\n",
    )
    assert repeated[0] == 0
    assert repeated[1].startswith("rotate: 0 data keys rewrapped under '2026-12', 10 were")


# What each role may do with the keys, through the store as its service will use it.


@pytest.fixture(scope="module")
def role_urls(database: str) -> dict[str, str]:
    by_variable = local_role_urls(database)
    if not by_variable:
        pytest.skip("no service roles here: deploy/local/postgres.sh start makes them")
    return {role: by_variable[variable] for role, variable in ROLES.items()}


@asynccontextmanager
async def as_role(role_urls: dict[str, str], role: str) -> AsyncIterator[PostgresKeyStore]:
    conn = await asyncpg.connect(role_urls[role])
    try:
        yield PostgresKeyStore(conn)
    finally:
        await conn.close()


async def test_the_projector_creates_keys_and_the_api_and_audit_read_them(
    role_urls: dict[str, str],
) -> None:
    names = pseudonyms(2)
    async with as_role(role_urls, "projector") as projector:
        created = await projector.get_or_create(candidates(names))
        assert await projector.get_or_create(candidates(names)) == created
    for reader in ("api", "audit"):
        async with as_role(role_urls, reader) as store:
            assert await store.fetch(names) == created


Action = Callable[[PostgresKeyStore], Awaitable[object]]


def _create(store: PostgresKeyStore) -> Awaitable[object]:
    return store.get_or_create(candidates(pseudonyms(1)))


def _delete(store: PostgresKeyStore) -> Awaitable[object]:
    return store.delete(pseudonyms(1))


def _rewrap(store: PostgresKeyStore) -> Awaitable[object]:
    old = MASTERS.wrap(DataKey.generate())
    return store.replace([(uuid.uuid4().hex, old, old)])


def _read(store: PostgresKeyStore) -> Awaitable[object]:
    return store.fetch(pseudonyms(1))


DENIED = [
    # The API will open sealed fields, never make or erase keys.
    pytest.param("api", _create, id="api-creates"),
    pytest.param("api", _delete, id="api-erases"),
    # Erasing and rewrapping are the owner's until the erasure job has a role.
    pytest.param("projector", _delete, id="projector-erases"),
    pytest.param("projector", _rewrap, id="projector-rewraps"),
    pytest.param("audit", _create, id="audit-creates"),
    pytest.param("audit", _delete, id="audit-erases"),
    # The gate needs pseudonyms only (the suppression check), never a key.
    pytest.param("dispatcher", _read, id="dispatcher-reads"),
    pytest.param("dispatcher", _create, id="dispatcher-creates"),
]


@pytest.mark.parametrize(("role", "action"), DENIED)
async def test_a_role_may_not_touch_the_keys_beyond_its_service(
    role_urls: dict[str, str], role: str, action: Action
) -> None:
    async with as_role(role_urls, role) as store:
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await action(store)


@pytest.mark.parametrize("role", list(ROLES))
async def test_no_role_may_empty_the_keys(role_urls: dict[str, str], role: str) -> None:
    conn = await asyncpg.connect(role_urls[role])
    try:
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.execute("TRUNCATE consent.data_keys")
    finally:
        await conn.close()
