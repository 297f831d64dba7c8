"""The dispatcher's tables partitioned by day, on the real PostgreSQL: the migration
moves an existing deployment's rows; a request_id still gets one decision (and one
send) when two instances write it at once, into different days' partitions; the
maintenance drops the days past the horizon, never the confirmations, never a
request still waiting for its release, and empties the default partitions.

Each test has a private, migrated database. The maintenance is run as of simulated
instants years ahead (`maintain_partitions_as_of`, the owner's), so that the days
it creates and drops are the test's own."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from bench.retention_load import migrations_before_day_partitions
from services.dispatcher.gate.store import DecisionRow, GateStore
from services.dispatcher.request_locks import DECISIONS, lock_request_ids
from services.dispatcher.retention.maintenance import PartitionMaintenance
from services.dispatcher.sender.store import SendStore
from shared.db.migrate import apply_migrations
from shared.db.pool import open_pool
from tests.support.db_roles import local_role_urls
from tests.support.private_db import database_of_our_own, private_database
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

DAY = timedelta(days=1)
PARTITIONED = {"decisions": "decided_at", "sends": "first_attempt_at", "deferred": "deferred_at"}


@pytest.fixture
async def database(stack: Stack) -> AsyncIterator[str]:
    async with private_database(stack) as url:
        yield url


@pytest.fixture
async def pool(database: str) -> AsyncIterator[Any]:
    db = await open_pool(database, max_size=6)
    yield db
    await db.close()


def _utc_midnight(instant: datetime) -> datetime:
    return instant.replace(hour=0, minute=0, second=0, microsecond=0)


def _row(
    request_id: str,
    decided_at: datetime,
    *,
    source_partition: int = 0,
    decision: str = "dropped",
    replaces: datetime | None = None,
) -> DecisionRow:
    body = {"request_id": request_id, "decision": decision}
    return DecisionRow(
        request_id=request_id,
        recipient="+79161234567",
        purpose="event_reminder",
        decision=decision,
        reason="quiet_hours" if decision == "deferred" else "no_consent",
        consent_event_id=None,
        opt_out_event_id=None,
        decided_at=decided_at,
        source_partition=source_partition,
        source_offset=0,
        decision_json=orjson.dumps(body),
        outbound_json=None,
        not_before=decided_at + timedelta(hours=1) if decision == "deferred" else None,
        request_json=orjson.dumps(body) if decision == "deferred" else None,
        replaces=replaces,
    )


async def _maintain(pool: Any, as_of: datetime, horizon_days: int = 7) -> set[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT partition_name, action FROM dispatcher.maintain_partitions_as_of($1, $2, 2)",
        as_of,
        horizon_days,
    )
    return {(r["partition_name"], r["action"]) for r in rows}


async def _partition_of(pool: Any, table: str, request_id: str) -> str:
    where: str = await pool.fetchval(
        f"SELECT tableoid::regclass::text FROM dispatcher.{table} WHERE request_id = $1",
        request_id,
    )
    return where


async def _day_partitions(pool: Any, table: str) -> list[str]:
    """The table's day partitions of the simulated years (the test's own)."""
    rows = await pool.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = $1::regclass AND c.relname ~ '_p20[3-9]' ORDER BY 1",
        f"dispatcher.{table}",
    )
    return [r["relname"] for r in rows]


# ------------------------------------------------------------------ the migration


_OLD_ROWS = """
INSERT INTO dispatcher.decisions (request_id, recipient, purpose, decision, reason,
    consent_event_id, decided_at, source_partition, source_offset, decision_json,
    outbound_json, source_topic, not_before)
SELECT 'old-' || g, '+7916123456' || (g % 10), 'event_reminder',
    CASE WHEN g = 3 THEN 'deferred' ELSE 'dispatched' END, 'consented', 'grant-' || g,
    $1::timestamptz - (g % 3) * interval '13 days', 0, g, jsonb_build_object('g', g),
    jsonb_build_object('to', g), 'messages.requests.v1',
    CASE WHEN g = 3 THEN $1::timestamptz + interval '1 hour' END
FROM generate_series(1, 30) AS g;
INSERT INTO dispatcher.deferred (request_id, recipient, not_before, request_json, deferred_at)
SELECT request_id, recipient, not_before, decision_json, decided_at
FROM dispatcher.decisions WHERE decision = 'deferred';
INSERT INTO dispatcher.sends (request_id, recipient, status, provider_message_id,
    http_status, attempts, first_attempt_at, sent_at)
SELECT request_id, recipient, 'sent', 'wamid.' || source_offset, 200, 1, decided_at, decided_at
FROM dispatcher.decisions WHERE decision = 'dispatched';
INSERT INTO dispatcher.confirmations
VALUES ('opt-out-1', 'old-1', $1::timestamptz - interval '400 days');
"""

_EVERY_ROW = "SELECT to_jsonb(t)::text FROM dispatcher.{} AS t ORDER BY request_id"


async def _every_row(conn: Any) -> dict[str, list[str]]:
    tables = [*PARTITIONED, "confirmations"]
    return {t: [r[0] for r in await conn.fetch(_EVERY_ROW.format(t))] for t in tables}


async def test_existing_rows_move_into_day_partitions_keeping_columns_indexes_and_grants(
    stack: Stack, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    async with database_of_our_own(stack.database_url, migrate=False) as url:
        await apply_migrations(url, migrations_before_day_partitions(tmp_path))
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(_OLD_ROWS.replace("$1", f"'{now.isoformat()}'"))
            before = await _every_row(conn)

            assert await apply_migrations(url) == ["dispatcher/005_day_partitions.sql"]

            assert await _every_row(conn) == before
            for table, column in PARTITIONED.items():
                misplaced = await conn.fetchval(
                    f"SELECT count(*) FROM dispatcher.{table}"
                    f" WHERE tableoid::regclass::text <> 'dispatcher.{table}_p'"
                    f" || to_char({column} AT TIME ZONE 'UTC', 'YYYYMMDD')"
                )
                assert misplaced == 0, f"{table}: rows outside their day's partition"
                key = await conn.fetchval(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                    " WHERE conname = $1 AND conrelid = $2::regclass",
                    f"{table}_pkey",
                    f"dispatcher.{table}",
                )
                assert key == f"PRIMARY KEY (request_id, {column})"
                assert await conn.fetchval("SELECT to_regclass($1)", f"dispatcher.{table}_default")
                assert not await conn.fetchval(
                    "SELECT to_regclass($1)", f"dispatcher.{table}_unpartitioned"
                )
            indexes = {
                r["indexname"]
                for r in await conn.fetch(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = 'dispatcher'"
                )
            }
            assert {
                "decisions_recipient_dispatched_idx",
                "decisions_waiting_idx",
                "sends_unfinished_idx",
                "deferred_due_idx",
                "confirmations_pkey",
            } <= indexes
            # Every partition has its key's index, which leads with request_id.
            unindexed = await conn.fetchval(
                "SELECT count(*) FROM pg_inherits i WHERE i.inhparent::regclass::text"
                " IN ('dispatcher.decisions', 'dispatcher.sends', 'dispatcher.deferred')"
                " AND NOT EXISTS (SELECT FROM pg_index x JOIN pg_attribute a"
                "   ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]"
                "   WHERE x.indrelid = i.inhrelid AND x.indisunique AND a.attname = 'request_id')"
            )
            assert unindexed == 0
            # Kept for ever, as it was: one row per opt-out.
            assert (
                await conn.fetchval(
                    "SELECT relkind::text FROM pg_class"
                    " WHERE oid = 'dispatcher.confirmations'::regclass"
                )
                == "r"
            )
            await _grants_hold(conn)
        finally:
            await conn.close()


async def _grants_hold(conn: Any) -> None:
    """004's grants hold for the new tables, and only the dispatcher maintains them."""
    roles = {r[0] for r in await conn.fetch("SELECT rolname FROM pg_roles")}
    if not {"consent_dispatcher", "consent_audit"} <= roles:
        return  # a database without the service roles: the grants were skipped
    allowed = {
        "decisions": {"SELECT", "INSERT", "UPDATE"},
        "sends": {"SELECT", "INSERT", "UPDATE"},
        "deferred": {"SELECT", "INSERT", "UPDATE", "DELETE"},
    }
    for table, privileges in allowed.items():
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"):
            granted = await conn.fetchval(
                "SELECT has_table_privilege('consent_dispatcher', $1, $2)",
                f"dispatcher.{table}",
                privilege,
            )
            assert granted is (privilege in privileges), (table, privilege)
        assert await conn.fetchval(
            "SELECT has_table_privilege('consent_audit', $1, 'SELECT')",
            f"dispatcher.{table}_default",
        )
    function = "SELECT has_function_privilege($1, $2, 'EXECUTE')"
    maintain = "dispatcher.maintain_partitions(integer, integer)"
    as_of = "dispatcher.maintain_partitions_as_of(timestamptz, integer, integer)"
    assert await conn.fetchval(function, "consent_dispatcher", maintain)
    assert not await conn.fetchval(function, "consent_dispatcher", as_of)
    assert not await conn.fetchval(function, "consent_audit", maintain)


# ------------------------------------------------------ one decision per request_id


class _HeldPool:
    """A pool whose transactions stop after their last statement, before COMMIT, until
    `release` is set: an instance between its insert and its commit."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.written = asyncio.Event()
        self.release = asyncio.Event()

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator["_HeldConnection"]:
        async with self.pool.acquire() as conn:
            yield _HeldConnection(conn, self)


class _HeldConnection:
    def __init__(self, conn: Any, held: _HeldPool) -> None:
        self._conn = conn
        self._held = held

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self._conn.transaction():
            yield
            self._held.written.set()
            await self._held.release.wait()


async def test_a_request_id_decided_by_two_instances_at_once_is_recorded_once(
    pool: Any,
) -> None:
    """A records its decisions just before midnight and has not committed; B decides
    the same request_ids just after it, for the next day's partition, where no key of
    A's could refuse them. B waits for A's commit, then records none of them."""
    ids = [f"race-{uuid.uuid4().hex}" for _ in range(5)]
    midnight = _utc_midnight(datetime.now(UTC)) + DAY  # tomorrow's partition exists
    held = _HeldPool(pool)
    first = asyncio.create_task(
        GateStore(held).record([_row(i, midnight - timedelta(milliseconds=1)) for i in ids])
    )
    try:
        await asyncio.wait_for(held.written.wait(), 10)
        second = asyncio.create_task(
            GateStore(pool).record([_row(i, midnight, source_partition=2) for i in ids])
        )
        await asyncio.sleep(1.0)
        waited = not second.done()
    finally:
        held.release.set()

    assert waited, "B did not wait for A's request_id locks"
    assert await asyncio.wait_for(first, 10) == set(ids)
    assert await asyncio.wait_for(second, 10) == set()
    rows = await pool.fetch(
        "SELECT request_id, source_partition FROM dispatcher.decisions"
        " WHERE request_id = ANY($1::text[])",
        ids,
    )
    assert sorted((r["request_id"], r["source_partition"]) for r in rows) == sorted(
        (i, 0) for i in ids
    )


async def test_instances_racing_on_the_same_request_ids_across_midnight_record_one_each(
    pool: Any,
) -> None:
    """Four instances record the same 300 request_ids at once, each in its own order
    and at its own instant on either side of midnight; round after round."""
    midnight = _utc_midnight(datetime.now(UTC)) + DAY
    for round_ in range(3):
        ids = [f"race-{round_}-{uuid.uuid4().hex}" for _ in range(300)]
        stores = [GateStore(pool) for _ in range(4)]
        instants = [midnight + timedelta(milliseconds=m) for m in (-2, -1, 1, 2)]
        batches = [
            [_row(i, at, source_partition=n) for i in (ids if n % 2 else ids[::-1])]
            for n, at in enumerate(instants)
        ]
        recorded = await asyncio.gather(
            *(s.record(b) for s, b in zip(stores, batches, strict=True))
        )

        assert sorted(i for r in recorded for i in r) == sorted(ids)  # each by one instance
        counts = await pool.fetch(
            "SELECT request_id, count(*) AS n FROM dispatcher.decisions"
            " WHERE request_id = ANY($1::text[]) GROUP BY request_id",
            ids,
        )
        assert len(counts) == len(ids)
        assert {c["n"] for c in counts} == {1}


async def test_a_second_sender_beginning_a_request_id_at_once_counts_a_second_attempt(
    pool: Any,
) -> None:
    """dispatcher.sends is partitioned by first_attempt_at: a sender that begins the
    request_id while another has begun it and not committed must find that row, not
    write a first attempt of its own."""
    request_id, recipient = f"send-{uuid.uuid4().hex}", "+79161234567"
    held = _HeldPool(pool)
    first = asyncio.create_task(SendStore(held).begin_attempt(request_id, recipient))
    try:
        await asyncio.wait_for(held.written.wait(), 10)
        second = asyncio.create_task(SendStore(pool).begin_attempt(request_id, recipient))
        await asyncio.sleep(1.0)
        waited = not second.done()
    finally:
        held.release.set()

    assert waited, "the second sender did not wait for the request_id's lock"
    assert (await first, await second) == (1, 2)
    store = SendStore(pool)
    assert await store.finish(request_id, recipient, "sent", http_status=200)
    assert await store.begin_attempt(request_id, recipient) is None
    assert not await store.finish(request_id, recipient, "failed")
    row = (await store.rows([request_id]))[request_id]
    assert (row.status, row.attempts, row.http_status) == ("sent", 2, 200)
    count = "SELECT count(*) FROM dispatcher.sends WHERE request_id = $1"
    assert await pool.fetchval(count, request_id) == 1


async def test_a_batch_of_two_thousand_request_ids_holds_few_locks(pool: Any) -> None:
    """PostgreSQL's lock table is shared and bounded: a lock per request_id of a full
    batch, in a few instances at once, would exhaust it ("out of shared memory")."""
    ids = [f"many-{uuid.uuid4().hex}" for _ in range(2000)]
    async with pool.acquire() as conn, conn.transaction():
        await lock_request_ids(conn, DECISIONS, ids)
        held = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND pid = pg_backend_pid() AND classid = $1",
            DECISIONS,
        )

    assert 0 < held <= 64


# ------------------------------------------------------------------ the maintenance

START = datetime(2031, 3, 1, tzinfo=UTC)


async def test_days_past_the_horizon_are_dropped_and_the_confirmations_kept(pool: Any) -> None:
    """Fifteen simulated days, each maintained at midnight, then a decision, a send
    and a confirmation at noon. With a horizon of 7 days, every row younger than 7
    days stays, every day wholly older goes, and every confirmation stays."""
    store, sends = GateStore(pool), SendStore(pool)
    for day in range(15):
        midnight = START + day * DAY
        await _maintain(pool, midnight)
        noon = midnight + timedelta(hours=12)
        await store.record([_row(f"day-{day}", noon)])
        await pool.execute(
            "INSERT INTO dispatcher.sends (request_id, status, attempts, first_attempt_at)"
            " VALUES ($1, 'sent', 1, $2)",
            f"day-{day}",
            noon,
        )
        await pool.execute(
            "INSERT INTO dispatcher.confirmations VALUES ($1, $2, $3)",
            f"opt-out-{day}",
            f"day-{day}",
            noon,
        )
    as_of = START + 15 * DAY  # 2031-03-16 00:00

    changes = await _maintain(pool, as_of)

    kept = [
        f"day-{d}" for d in range(15) if START + d * DAY + timedelta(hours=12) > as_of - 7 * DAY
    ]
    assert kept == [f"day-{d}" for d in range(8, 15)]
    assert sorted(await store.decisions([f"day-{d}" for d in range(15)])) == sorted(kept)
    assert sorted(await sends.rows([f"day-{d}" for d in range(15)])) == sorted(kept)
    assert {(f"{t}_p20310308", "dropped") for t in PARTITIONED} <= changes
    assert {(f"{t}_p20310318", "created") for t in PARTITIONED} <= changes
    days = [f"{START + d * DAY:%Y%m%d}" for d in range(8, 18)]  # the horizon and 2 ahead
    for table in PARTITIONED:
        assert await _day_partitions(pool, table) == [f"{table}_p{d}" for d in days]
    assert await pool.fetchval("SELECT count(*) FROM dispatcher.confirmations") == 15
    # The same round again changes nothing: two instances may run it.
    assert await _maintain(pool, as_of) == set()


async def test_a_request_waiting_past_the_horizon_keeps_its_day_until_decided(
    pool: Any,
) -> None:
    """Quiet hours may hold a request longer than the horizon (a window closed for
    days, a dispatcher stopped): its day stays until its final decision replaces
    the deferral, which the release then still finds."""
    store = GateStore(pool)
    deferred_at = START + timedelta(hours=22)
    await _maintain(pool, START)
    request_id = f"waiting-{uuid.uuid4().hex}"
    assert await store.record([_row(request_id, deferred_at, decision="deferred")]) == {request_id}
    later = START + 20 * DAY

    changes = await _maintain(pool, later, horizon_days=1)

    assert {("decisions_p20310301", "kept"), ("deferred_p20310301", "kept")} <= changes
    assert ("sends_p20310301", "dropped") in changes
    stored = (await store.decisions([request_id]))[request_id]
    assert (stored.decision, stored.decided_at) == ("deferred", deferred_at)
    final = _row(request_id, later + timedelta(minutes=5), replaces=stored.decided_at)
    assert await store.record([final]) == {request_id}
    assert await _partition_of(pool, "decisions", request_id) == "dispatcher.decisions_p20310321"
    assert await pool.fetchval("SELECT count(*) FROM dispatcher.deferred") == 0

    changes = await _maintain(pool, later + timedelta(hours=1), horizon_days=1)

    assert {("decisions_p20310301", "dropped"), ("deferred_p20310301", "dropped")} <= changes
    assert (await store.decisions([request_id]))[request_id].decision == "dropped"


async def test_a_row_of_a_day_without_its_partition_waits_in_the_default_one(pool: Any) -> None:
    far = datetime(2035, 1, 1, 9, tzinfo=UTC)
    request_id = f"far-{uuid.uuid4().hex}"
    await GateStore(pool).record([_row(request_id, far)])
    assert await _partition_of(pool, "decisions", request_id) == "dispatcher.decisions_default"

    changes = await _maintain(pool, far - 3 * DAY)

    assert ("decisions_p20350101", "created") in changes
    assert await _partition_of(pool, "decisions", request_id) == "dispatcher.decisions_p20350101"
    assert await pool.fetchval("SELECT count(*) FROM dispatcher.decisions_default") == 0


async def test_the_dispatcher_maintains_as_its_own_role_what_is_due_today(database: str) -> None:
    """Through the SECURITY DEFINER function, on the clock's today: the days ahead that
    the migration did not make (it made today and the next two)."""
    url = local_role_urls(database).get("DISPATCHER_DATABASE_URL", database)
    role_pool = await open_pool(url, max_size=1)
    try:
        maintenance = PartitionMaintenance(role_pool, horizon_days=7, ahead_days=4)
        changes = await maintenance.maintain()
    finally:
        await role_pool.close()
    today = datetime.now(UTC).date()
    # A run straddling midnight makes one day more.
    ahead = {f"{t}_p{today + timedelta(days=n):%Y%m%d}" for t in PARTITIONED for n in (3, 4)}
    assert {c.partition for c in changes if c.action == "created"} >= ahead
    assert {c.action for c in changes} == {"created"}
