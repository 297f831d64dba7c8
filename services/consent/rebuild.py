"""Rebuild the consent projection from the log, or verify it (ARCHITECTURE.md section 2).

    python -m services.consent.rebuild [--from log|table] [--verify] [--progress]
                                       [--timeout SECONDS] [--topic TOPIC]

`--from log` (the default) reads `consent.events.v1` from the beginning up to
the end offsets taken at start (no consumer group, read_committed), validates
each record as the projector does (a rejected record is counted and skipped:
the projector dead-letters it), clamps `occurred_at` to the broker's timestamp
and folds every subject with `fold_subject`, the projector's own fold.
`--from table` folds `consent.events` (the projector's copy of the log) instead,
streamed with a server-side cursor from one snapshot.

Without `--verify`, ONE transaction inserts the events `consent.events` lacks,
replaces `consent.subjects` with the rebuilt states and (from the log) sets
`consent.tracking` to the end offsets read: the projector continues from
there. Rejected records past the tracked positions (the projector never
reached them) go to the DLQ first, as the projector would have sent them: at
least once, so a refused write, or a database rebuilt from nothing, may
dead-letter a record again.

With `--verify` nothing is written: the rebuilt states are compared, as
SubjectState models, with `consent.subjects`. From the log it first waits
(`--timeout`) until `consent.tracking` has reached the end offsets read, so
both sides have seen the same positions; a subject with events past them (the
live projector moved on) is skipped, not compared. From the table, the events
and the states are read in one snapshot.

Exit status: 0 written / equal; 1 states differ (the subjects are named,
masked); 2 refused or failed (tracking moved, projection behind, no broker).

Stop the consent service during a rebuild that writes: a live projector races
it. The command protects itself rather than trusting that: it reads
`consent.tracking` before reading the source and, in its write transaction,
first locks `consent.events`, `consent.subjects` and `consent.tracking` IN
EXCLUSIVE MODE (writers wait, readers such as the API and the dispatcher's
fence do not; taken in the projector's own order, so a projector transaction
in flight completes first instead of deadlocking), then refuses to write if
tracking moved since: the projector applied something the rebuild did not
account for. A projector left waiting on the locks resumes after the commit;
its next batch refolds from `consent.events`, which the rebuild completed, so
the two stay consistent.
"""

import argparse
import asyncio
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from asyncpg import PostgresError
from tqdm import tqdm

from services.consent.settings import ConsentSettings
from services.consent.store import TRACKING_CHANNEL, event_columns, to_logged
from shared.consent.fold import fold_subject
from shared.consent.state import LoggedEvent, SubjectState
from shared.contract.events import parse_consent_event
from shared.db.pool import open_pool
from shared.kafka.clients import durable_producer, end_offsets
from shared.kafka.dlq import send_to_dlq
from shared.phone import InvalidPhoneNumberError, mask_phone, normalize_phone
from shared.rejection import Rejected
from shared.structured_logging import configure_logging
from shared.topics import CONSENT_EVENTS

Source = Literal["log", "table"]
_T = TypeVar("_T")
_CHUNK = 5000
_STALL_S = 30.0  # no progress from the broker for this long: give up, don't hang


class RebuildRefusedError(RuntimeError):
    """The rebuild cannot be written or compared safely; nothing was written."""


@dataclass
class Rebuilt:
    """Subject states folded from `source`, as of `positions` (next offset per partition)."""

    source: Source
    topic: str
    positions: dict[int, int]
    states: dict[str, SubjectState] = field(default_factory=dict)
    events: list[LoggedEvent] = field(default_factory=list)  # from the log: to insert
    rejected: Counter[str] = field(default_factory=Counter)
    unseen_rejects: list[tuple[ConsumerRecord, Rejected]] = field(default_factory=list)
    scope: frozenset[str] | None = None  # only these subjects were rebuilt
    records: int = 0

    def summary(self) -> str:
        rejected = ", ".join(f"{r}: {n}" for r, n in sorted(self.rejected.items())) or "none"
        return (
            f"rebuilt from {self.source} ({self.topic}): {self.records} records, "
            f"{sum(s.version for s in self.states.values())} events folded into "
            f"{len(self.states)} subjects, rejected {sum(self.rejected.values())} ({rejected}), "
            f"positions {dict(sorted(self.positions.items()))}"
        )


# ---------------------------------------------------------------- reading the log


async def rebuild_states(
    bootstrap: str,
    *,
    topic: str = CONSENT_EVENTS,
    subjects: Collection[str] | None = None,
    from_offsets: Mapping[int, int] | None = None,
    keep_rejects_from: Mapping[int, int] | None = None,
    progress: bool = False,
) -> Rebuilt:
    """Fold the log up to its end offsets taken now. `subjects` limits the fold
    (records about others are skipped unvalidated); `from_offsets` starts there
    instead of the beginning, which is exact only for subjects with no earlier
    event; rejects at or past `keep_rejects_from` are kept for the DLQ."""
    scope = frozenset(normalize_phone(s) for s in subjects) if subjects is not None else None
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    try:
        await consumer.start()
        ends = await end_offsets(consumer, topic)
        rebuilt = Rebuilt("log", topic, ends, scope=scope)
        first: dict[str, LoggedEvent] = {}
        async for record in _records_until(consumer, topic, ends, from_offsets, progress):
            rebuilt.records += 1
            if scope is not None and _subject_hint(record.value) not in scope:
                continue
            parsed = parse_consent_event(record.value)
            if isinstance(parsed, Rejected):
                rebuilt.rejected[parsed.reason] += 1
                if keep_rejects_from is not None and record.offset >= keep_rejects_from.get(
                    record.partition, 0
                ):
                    rebuilt.unseen_rejects.append((record, parsed))
                continue
            log_time = datetime.fromtimestamp(record.timestamp / 1000, UTC)
            logged = LoggedEvent.from_log(parsed, log_time, record.partition, record.offset)
            # One row per event_id, as the events table keeps: the first in the log.
            kept = first.get(parsed.event_id)
            if kept is None or _log_position(logged) < _log_position(kept):
                first[parsed.event_id] = logged
    finally:
        await consumer.stop()
    rebuilt.events = sorted(first.values(), key=_log_position)
    rebuilt.states = _fold(rebuilt.events)
    return rebuilt


async def _records_until(
    consumer: AIOKafkaConsumer,
    topic: str,
    ends: Mapping[int, int],
    starts: Mapping[int, int] | None,
    progress: bool,
) -> AsyncIterator[ConsumerRecord]:
    tps = [TopicPartition(topic, p) for p in sorted(ends)]
    consumer.assign(tps)
    beginnings = await consumer.beginning_offsets(tps)
    for tp in tps:
        start = max(beginnings[tp], (starts or {}).get(tp.partition, 0))
        consumer.seek(tp, min(start, ends[tp.partition]))
    positions = {tp: await consumer.position(tp) for tp in tps}
    total = sum(max(0, ends[tp.partition] - positions[tp]) for tp in tps)
    remaining = {tp for tp in tps if positions[tp] < ends[tp.partition]}
    stalled_since = time.monotonic()
    with _progress_bar(total, progress, "log") as bar:
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=500, max_records=_CHUNK)
            for tp, records in fetched.items():
                for record in records:
                    if record.offset < ends[tp.partition]:
                        yield record
                bar.update(len(records))
            # The position also steps over transaction markers, which are never returned.
            before = len(remaining)
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp.partition]}
            if fetched or len(remaining) < before:
                stalled_since = time.monotonic()
            elif time.monotonic() - stalled_since > _STALL_S:
                raise RebuildRefusedError(f"no progress reading {topic} for {_STALL_S:.0f}s")


def _subject_hint(raw: bytes | None) -> str | None:
    """A cheap look at the subject, so a scoped rebuild validates only its own records."""
    try:
        body = orjson.loads(raw) if raw is not None else None
        subject = body.get("subject") if isinstance(body, dict) else None
        return normalize_phone(subject) if isinstance(subject, str) else None
    except (orjson.JSONDecodeError, InvalidPhoneNumberError):
        return None


def _log_position(logged: LoggedEvent) -> tuple[datetime, int, int]:
    return (logged.log_time, logged.partition, logged.offset)


def _fold(events: Iterable[LoggedEvent]) -> dict[str, SubjectState]:
    histories: dict[str, list[LoggedEvent]] = defaultdict(list)
    for logged in events:
        histories[logged.event.subject].append(logged)
    return {subject: fold_subject(subject, history) for subject, history in histories.items()}


# -------------------------------------------------------------- reading the table


async def rebuild_states_from_table(
    conn: Any,
    *,
    topic: str = CONSENT_EVENTS,
    subjects: Collection[str] | None = None,
    progress: bool = False,
) -> Rebuilt:
    """Fold consent.events. Must run inside a transaction (the cursor needs one);
    REPEATABLE READ makes the events, the tracking and any later read one snapshot."""
    scope = frozenset(normalize_phone(s) for s in subjects) if subjects is not None else None
    rebuilt = Rebuilt("table", topic, await tracking_positions(conn, topic), scope=scope)
    where = "topic = $1 AND ($2::text[] IS NULL OR subject = ANY($2::text[]))"
    args = (topic, sorted(scope) if scope is not None else None)
    total = await conn.fetchval(f"SELECT count(*) FROM consent.events WHERE {where}", *args)
    histories: dict[str, list[LoggedEvent]] = defaultdict(list)
    query = (
        f'SELECT subject, payload, log_time, partition, "offset" FROM consent.events WHERE {where}'
    )
    with _progress_bar(total, progress, "table") as bar:
        async for row in conn.cursor(query, *args, prefetch=_CHUNK):
            histories[row["subject"]].append(to_logged(row))
            rebuilt.records += 1
            bar.update()
    rebuilt.states = {s: fold_subject(s, history) for s, history in histories.items()}
    return rebuilt


async def tracking_positions(conn: Any, topic: str = CONSENT_EVENTS) -> dict[int, int]:
    rows = await conn.fetch(
        "SELECT partition, next_offset FROM consent.tracking WHERE topic = $1", topic
    )
    return {row["partition"]: row["next_offset"] for row in rows}


def _progress_bar(total: int, wanted: bool, label: str) -> "tqdm[Any]":
    return tqdm(
        total=total,
        desc=f"rebuild from {label}",
        unit="ev",
        unit_scale=True,
        file=sys.stderr,
        disable=not (wanted or sys.stderr.isatty()),
    )


# ------------------------------------------------------------------------- writing

_INSERT_EVENTS = """
INSERT INTO consent.events
    (event_id, subject, type, occurred_at, log_time, topic, partition, "offset", clamped, payload)
SELECT * FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],
    $6::text[], $7::int[], $8::bigint[], $9::bool[], $10::jsonb[])
ON CONFLICT DO NOTHING
"""
_UPSERT_CHANGED_SUBJECTS = """
INSERT INTO consent.subjects (subject, status, state, last_event_id, version, updated_at)
SELECT s, st, j, l, v, now()
FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::text[], $5::int[]) AS t(s, st, j, l, v)
ON CONFLICT (subject) DO UPDATE SET
    status = EXCLUDED.status, state = EXCLUDED.state, last_event_id = EXCLUDED.last_event_id,
    version = EXCLUDED.version, updated_at = now()
WHERE consent.subjects.state IS DISTINCT FROM EXCLUDED.state
"""
_SET_TRACKING = """
INSERT INTO consent.tracking (topic, partition, next_offset)
SELECT $1, p, o FROM unnest($2::int[], $3::bigint[]) AS t(p, o)
ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()
"""


@dataclass(frozen=True)
class Written:
    events_inserted: int
    subjects_changed: int
    subjects_deleted: int
    dead_lettered: int

    def summary(self) -> str:
        return (
            f"written: {self.events_inserted} events inserted, {self.subjects_changed} subjects "
            f"changed, {self.subjects_deleted} removed, {self.dead_lettered} rejects dead-lettered"
        )


async def write_rebuilt(
    pool: Any, rebuilt: Rebuilt, *, tracked_before: Mapping[int, int], bootstrap: str | None = None
) -> Written:
    """Write `rebuilt` in one transaction, refusing if consent.tracking is no longer
    `tracked_before` (read before the source was). Rejects the projector has not
    reached go to the DLQ first (needs `bootstrap`): durable before the position passes them."""
    if rebuilt.scope is not None:
        raise RebuildRefusedError("a rebuild limited to some subjects cannot replace the table")
    behind = {p: o for p, o in tracked_before.items() if o > rebuilt.positions.get(p, o)}
    if rebuilt.source == "log" and behind:
        raise RebuildRefusedError(f"the projection is past the log's end offsets read: {behind}")
    dead_lettered = await _dead_letter(rebuilt.unseen_rejects, bootstrap)
    async with pool.acquire() as conn, conn.transaction():
        # The projector's order (events, subjects, tracking): it finishes a transaction
        # in flight rather than deadlock with us; readers are not blocked.
        await conn.execute(
            "LOCK TABLE consent.events, consent.subjects, consent.tracking IN EXCLUSIVE MODE"
        )
        now = await tracking_positions(conn, rebuilt.topic)
        if now != dict(tracked_before):
            raise RebuildRefusedError(
                f"consent.tracking moved during the rebuild ({dict(tracked_before)} -> {now}): "
                "is the consent service running? stop it and run the rebuild again"
            )
        inserted = 0
        for chunk in _chunks(rebuilt.events):
            status = await conn.execute(_INSERT_EVENTS, *event_columns(rebuilt.topic, chunk))
            inserted += int(status.split()[-1])
        changed, deleted = await _replace_subjects(conn, rebuilt.states.values())
        if rebuilt.source == "log":
            positions = rebuilt.positions
            await conn.execute(
                _SET_TRACKING, rebuilt.topic, list(positions), list(positions.values())
            )
        await conn.execute(f"NOTIFY {TRACKING_CHANNEL}")
    return Written(inserted, changed, deleted, dead_lettered)


async def _dead_letter(
    rejects: list[tuple[ConsumerRecord, Rejected]], bootstrap: str | None
) -> int:
    if not rejects:
        return 0
    if bootstrap is None:
        raise RebuildRefusedError(f"{len(rejects)} rejects need the DLQ and no broker was given")
    producer = durable_producer(bootstrap)
    await producer.start()
    try:
        await send_to_dlq(producer, rejects)
    finally:
        await producer.stop()
    return len(rejects)


async def _replace_subjects(conn: Any, states: Iterable[SubjectState]) -> tuple[int, int]:
    listed = list(states)
    await conn.execute(
        "CREATE TEMP TABLE rebuilt_subject (subject text PRIMARY KEY) ON COMMIT DROP"
    )
    changed = 0
    for chunk in _chunks(listed):
        await conn.execute(
            "INSERT INTO rebuilt_subject SELECT unnest($1::text[])", [s.subject for s in chunk]
        )
        status = await conn.execute(
            _UPSERT_CHANGED_SUBJECTS,
            [s.subject for s in chunk],
            [s.status.value for s in chunk],
            [s.model_dump(mode="json") for s in chunk],
            [s.last_event_id for s in chunk],
            [s.version for s in chunk],
        )
        changed += int(status.split()[-1])
    # DELETE, not TRUNCATE: readers (the API, the dispatcher) keep the old rows until commit.
    status = await conn.execute(
        "DELETE FROM consent.subjects s WHERE NOT EXISTS "
        "(SELECT 1 FROM rebuilt_subject r WHERE r.subject = s.subject)"
    )
    return changed, int(status.split()[-1])


def _chunks(items: Sequence[_T]) -> Iterable[Sequence[_T]]:
    return (items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK))


# ----------------------------------------------------------------------- verifying


@dataclass
class Verification:
    equal: int = 0
    differing: dict[str, str] = field(default_factory=dict)  # subject -> what differs
    skipped: set[str] = field(default_factory=set)  # moved on past the compared positions

    @property
    def ok(self) -> bool:
        return not self.differing

    def report(self, limit: int = 50) -> str:
        lines = [
            f"verify: {self.equal} subjects equal, {len(self.differing)} differ, "
            f"{len(self.skipped)} skipped (the projector moved past the positions compared)"
        ]
        for subject, what in sorted(self.differing.items())[:limit]:
            lines.append(f"  {mask_phone(subject)}: {what}")
        if len(self.differing) > limit:
            lines.append(f"  ... and {len(self.differing) - limit} more")
        return "\n".join(lines)


async def verify_rebuilt(pool: Any, rebuilt: Rebuilt, *, timeout: float = 60.0) -> Verification:
    """Compare a rebuild from the log with consent.subjects once the projection
    has reached the same positions."""
    await wait_for_tracking(pool, rebuilt.topic, rebuilt.positions, timeout)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        return await compare_with_table(conn, rebuilt)


async def wait_for_tracking(
    pool: Any, topic: str, positions: Mapping[int, int], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        tracked = await tracking_positions(pool, topic)
        behind = {p: (tracked.get(p, 0), o) for p, o in positions.items() if tracked.get(p, 0) < o}
        if not behind:
            return
        if time.monotonic() >= deadline:
            raise RebuildRefusedError(
                f"consent.tracking did not reach the log's end offsets in {timeout:.0f}s "
                f"(partition: (tracked, end) {behind}): is the consent service running?"
            )
        await asyncio.sleep(0.2)


async def compare_with_table(conn: Any, rebuilt: Rebuilt) -> Verification:
    """Run inside one snapshot. A subject the projector has events for past
    `rebuilt.positions` is skipped: the two sides saw different histories."""
    query = "SELECT subject, state FROM consent.subjects"
    args: tuple[Any, ...] = ()
    if rebuilt.scope is not None:
        query += " WHERE subject = ANY($1::text[])"
        args = (sorted(rebuilt.scope),)
    result = Verification()
    seen: set[str] = set()
    async for row in conn.cursor(query, *args, prefetch=_CHUNK):
        subject = row["subject"]
        seen.add(subject)
        live = SubjectState.model_validate(row["state"])
        expected = rebuilt.states.get(subject)
        if expected is None:
            result.differing[subject] = "in consent.subjects, absent from the rebuild"
        elif live == expected:
            result.equal += 1
        else:
            fields = [
                n for n in SubjectState.model_fields if getattr(live, n) != getattr(expected, n)
            ]
            result.differing[subject] = "differs in " + ", ".join(fields)
    for subject in rebuilt.states.keys() - seen:
        result.differing[subject] = "rebuilt, absent from consent.subjects"
    if rebuilt.source == "log" and result.differing:
        result.skipped = await _moved_on(conn, rebuilt, list(result.differing))
        for subject in result.skipped:
            del result.differing[subject]
    return result


async def _moved_on(conn: Any, rebuilt: Rebuilt, subjects: list[str]) -> set[str]:
    rows = await conn.fetch(
        """SELECT DISTINCT e.subject FROM consent.events e
           LEFT JOIN unnest($2::int[], $3::bigint[]) AS p(partition, end_offset)
             ON p.partition = e.partition
           WHERE e.topic = $1 AND e.subject = ANY($4::text[])
             AND e."offset" >= coalesce(p.end_offset, 0)""",
        rebuilt.topic,
        list(rebuilt.positions),
        list(rebuilt.positions.values()),
        subjects,
    )
    return {row["subject"] for row in rows}


# --------------------------------------------------------------------- the command


async def run(
    settings: ConsentSettings,
    *,
    source: Source = "log",
    verify: bool = False,
    progress: bool = False,
    timeout: float = 60.0,
    topic: str = CONSENT_EVENTS,
) -> int:
    """The command: prints a summary to stdout and returns the exit status."""
    pool: Any = None
    try:
        pool = await open_pool(settings.database_url, max_size=2)
        if source == "table" and verify:
            return await _verify_table(pool, topic, progress)
        if source == "table":
            async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
                rebuilt = await rebuild_states_from_table(conn, topic=topic, progress=progress)
            tracked_before = rebuilt.positions
        else:
            tracked_before = await tracking_positions(pool, topic)
            rebuilt = await rebuild_states(
                settings.kafka_bootstrap_servers,
                topic=topic,
                keep_rejects_from=None if verify else tracked_before,
                progress=progress,
            )
        print(rebuilt.summary())
        if verify:
            outcome = await verify_rebuilt(pool, rebuilt, timeout=timeout)
            print(outcome.report())
            return 0 if outcome.ok else 1
        written = await write_rebuilt(
            pool, rebuilt, tracked_before=tracked_before, bootstrap=settings.kafka_bootstrap_servers
        )
        print(written.summary())
        return 0
    except RebuildRefusedError as exc:
        print(f"rebuild refused: {exc}", file=sys.stderr)
        return 2
    except (LookupError, KafkaError, PostgresError, OSError) as exc:
        print(f"rebuild failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    finally:
        if pool is not None:
            await pool.close()


async def _verify_table(pool: Any, topic: str, progress: bool) -> int:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        rebuilt = await rebuild_states_from_table(conn, topic=topic, progress=progress)
        print(rebuilt.summary())
        outcome = await compare_with_table(conn, rebuilt)
    print(outcome.report())
    return 0 if outcome.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.consent.rebuild",
        description="Rebuild consent.subjects from the log (or consent.events), or verify it.",
    )
    parser.add_argument("--from", dest="source", choices=("log", "table"), default="log")
    parser.add_argument("--verify", action="store_true", help="compare only, write nothing")
    parser.add_argument("--progress", action="store_true", help="a progress bar even without a TTY")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="--verify: seconds to wait for the projector"
    )
    parser.add_argument("--topic", default=CONSENT_EVENTS, help="the event log topic")
    args = parser.parse_args(argv)
    settings = ConsentSettings()
    configure_logging(settings.log_level, settings.log_format)
    return asyncio.run(
        run(
            settings,
            source=args.source,
            verify=args.verify,
            progress=args.progress,
            timeout=args.timeout,
            topic=args.topic,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
