"""Projection throughput and rebuild speed ÷ a bare aiokafka consumer reading the same
topic, in the same run.

    python -m bench.bench_projection [--quick] [--events N] [--subjects N] [--repeats N]

A private topic laid out as `consent.events.v1` is (3 partitions, LogAppendTime,
infinite retention) is filled with valid ConsentEvents keyed by subject, every
subject's history interleaved with the others' as a live log would be. Then:

(a) raw consume: one aiokafka consumer (read_committed, no group) reads the topic
    from the beginning to the end offsets, in chunks of 5,000, doing nothing else:
    the shape of the rebuild's own read loop; and two floors under any rebuild,
    the same loop decoding every value from JSON (orjson, nothing validated), and
    validating every value as the projector does (`parse_consent_event`);
(b) projection: `Projector.handle` driven by `BatchConsumer`, wired exactly as
    `services.consent.main` wires it (group consumer, batches of CONSENT_MAX_BATCH,
    `track_idle_positions` on every poll), into a private database; timed from the
    first batch handed to it until its tracked positions reach the end offsets;
(c) rebuild: `rebuild_states` (read, validate, clamp, fold every subject in memory),
    then `write_rebuilt` of that result into another private database.

(a)'s three loops and (c)'s read-and-fold alternate, in reversed order every other round; medians.
(b) and the write run once (they take longest).
"""

import asyncio
import gc
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

import services.consent.projector as projector_module
from bench.consent_seed import phones
from bench.figures import Report, base_parser, median, sized, spread
from bench.kafka_io import Record, produce_bulk
from bench.machine import rss_bytes
from bench.private import (
    TopicSpec,
    delete_groups,
    private_database,
    private_topics,
    run_id,
    topic_ends,
)
from bench.processes import ROOT, py_spy
from services.consent.projector import Projector
from services.consent.rebuild import Rebuilt, rebuild_states, tracking_positions, write_rebuilt
from services.consent.settings import ConsentSettings
from services.consent.store import ConsentStore
from shared.contract.event_parsing import parse_consent_event
from shared.contract.events import GrantSource
from shared.contract.purposes import Purpose
from shared.db.pool import open_pool
from shared.kafka.batch_consumer import BatchConsumer
from shared.kafka.clients import durable_producer, group_consumer
from shared.kafka.security import security_options
from shared.kafka.topic_specs import EVENT_LOG_CONFIGS
from shared.service_runner import tune_cyclic_gc
from shared.topics import dlq
from tests.support.signing import (
    ERASURE_INDEX,
    PSEUDONYM_KEY,
    SIGNING_ENV,
    TRUST,
    VERIFY_KEYS,
)

PROFILES = ROOT / ".local" / "bench-logs"  # where BENCH_PYSPY profiles go
CHUNK = 5000  # services.consent.rebuild reads in chunks of this many records
PURPOSES = [p.value for p in Purpose]
SOURCES = [s.value for s in GrantSource]


# ------------------------------------------------------------------ the log


def event_records(subjects: list[str], count: int, rid: str, seed: int = 3) -> list[Record]:
    """Record j is event j // len(subjects) of subject j % len(subjects): histories
    interleave, so every batch touches as many subjects as it holds events."""
    rng = Random(seed)
    base = datetime.now(UTC) - timedelta(days=30)
    records: list[Record] = []
    for j in range(count):
        i, k = j % len(subjects), j // len(subjects)
        subject = subjects[i]
        occurred = (base + timedelta(hours=k, seconds=i % 3600)).isoformat()
        body: dict[str, Any] = {"event_id": f"ev-{rid}-{j}", "subject": subject}
        roll = rng.random() if k else 0.0
        if roll < 0.5:
            body |= {
                "type": "ConsentGranted",
                "source": SOURCES[rng.randrange(len(SOURCES))] if k else "event_registration",
                "purposes": rng.sample(PURPOSES, rng.randint(1, 2)) if k else ["event_reminder"],
                "evidence": {"registration_id": f"R-{j}"},
            }
            if rng.random() < 0.2:
                body["expires_at"] = (base + timedelta(days=60)).isoformat()
        elif roll < 0.65:
            body |= {"type": "ConsentRevoked", "source": "crm", "purposes": rng.sample(PURPOSES, 1)}
        elif roll < 0.85:
            body |= {"type": "OptedOut", "source": "whatsapp_reply"}
            body["evidence"] = {"message_id": f"wamid.{j}", "text": "STOP", "keyword": "STOP"}
        else:
            body |= {"type": "OptedIn", "source": "whatsapp_reply"}
            body["evidence"] = {"message_id": f"wamid.{j}", "text": "START", "keyword": "START"}
        body["occurred_at"] = occurred
        records.append((subject.encode(), orjson.dumps(body)))
    return records


# ------------------------------------------------------------------ (a) raw consume


async def raw_consume(
    bootstrap: str, topic: str, ends: dict[int, int], each: Callable[[Any], object] | None = None
) -> tuple[float, int]:
    """Seconds and records: the topic read to its end offsets, nothing done with them
    (or only `each` of every value: the floors under any rebuild, see `_compare`)."""
    started = time.perf_counter()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **security_options(),
    )
    await consumer.start()
    count = 0
    try:
        tps = [TopicPartition(topic, p) for p in sorted(ends)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        remaining = set(tps)
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=500, max_records=CHUNK)
            for records in fetched.values():
                count += len(records)
                if each is not None:
                    for record in records:
                        each(record.value)
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp.partition]}
    finally:
        await consumer.stop()
    return time.perf_counter() - started, count


# ------------------------------------------------------------------ (b) projection

# The consent service reads the keys of crypto-shredding from its environment.
for _name, _value in SIGNING_ENV.items():
    if _name.startswith("ERASURE_"):
        os.environ.setdefault(_name, _value)


@dataclass
class Projected:
    seconds: float
    events: int
    subjects: int


async def project(
    bootstrap: str, topic: str, database_url: str, group: str, ends: dict[int, int]
) -> Projected:
    """The consent service's projector loop against `topic`. Projector names the
    tracked topic through its module's CONSENT_EVENTS (it takes no topic parameter),
    so that one name is rebound for the duration."""
    settings = ConsentSettings(
        event_verify_keys=VERIFY_KEYS,
        pseudonym_key=PSEUDONYM_KEY,
    )
    tune_cyclic_gc()  # as the service runs (shared.service_runner.serve)
    saved = vars(projector_module)["CONSENT_EVENTS"]
    setattr(projector_module, "CONSENT_EVENTS", topic)  # noqa: B010 (a module's Final name)
    pool = await open_pool(database_url, max_size=8)
    producer = durable_producer(bootstrap)
    consumer = group_consumer(bootstrap, group)
    try:
        projector = Projector(ConsentStore(pool, ERASURE_INDEX), consumer, producer, TRUST)
        await producer.start()
        await consumer.start()
        first: list[float] = []

        async def handle(batch: list[ConsumerRecord]) -> None:
            if not first:
                first.append(time.perf_counter())
            await projector.handle(batch)

        loop = BatchConsumer(
            consumer,
            handle,
            name="projector",
            max_records=settings.max_batch,
            on_poll=projector.track_idle_positions,
        )
        consumer.subscribe([topic], listener=loop.listener(projector))
        projecting = loop.start()
        try:
            await _until(
                lambda: all(projector.applied.get(p, 0) >= e for p, e in ends.items()),
                projecting.task,
            )
            finished = time.perf_counter()
        finally:
            await projecting.stop()
        counts = await pool.fetchrow(
            "SELECT (SELECT count(*) FROM consent.events) AS events,"
            " (SELECT count(*) FROM consent.subjects) AS subjects"
        )
        return Projected(finished - first[0], counts["events"], counts["subjects"])
    finally:
        setattr(projector_module, "CONSENT_EVENTS", saved)  # noqa: B010
        await consumer.stop()
        await producer.stop()
        await pool.close()


async def _until(done: Callable[[], bool], task: "asyncio.Task[None]") -> None:
    while not done():
        if task.done():
            task.result()
            raise RuntimeError("the projector loop ended early")
        await asyncio.sleep(0.05)


# ------------------------------------------------------------------ (c) rebuild


async def rebuild(bootstrap: str, topic: str) -> tuple[float, Rebuilt]:
    started = time.perf_counter()
    rebuilt = await rebuild_states(bootstrap, topic=topic, trust=TRUST)
    return time.perf_counter() - started, rebuilt


async def write(database_url: str, rebuilt: Rebuilt, bootstrap: str) -> float:
    pool = await open_pool(database_url, max_size=2)
    try:
        tracked = await tracking_positions(pool, rebuilt.topic)
        started = time.perf_counter()
        await write_rebuilt(pool, rebuilt, tracked_before=tracked, bootstrap=bootstrap)
        return time.perf_counter() - started
    finally:
        await pool.close()


# ------------------------------------------------------------------ the run


async def alternate(
    repeats: int, sides: dict[str, Callable[[], Awaitable[float]]]
) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {name: [] for name in sides}
    for round_ in range(repeats):
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for name in order:
            # Untimed: no side pays for collecting what the one before left (a rebuild
            # leaves tens of millions of objects, and a full collection takes seconds).
            gc.collect()
            results[name].append(await sides[name]())
            print(f"   round {round_ + 1} {name}: {results[name][-1]:,.0f} events/s", flush=True)
    return results


async def run(report: Report, n: int, subjects_n: int, repeats: int) -> None:
    settings = ConsentSettings(
        event_verify_keys=VERIFY_KEYS,
        pseudonym_key=PSEUDONYM_KEY,
    )
    bootstrap = settings.kafka_bootstrap_servers
    rid = run_id()
    topic = f"bench.{rid}.consent-events"
    group = f"bench-{rid}-projector"
    specs = [TopicSpec(topic, 3, EVENT_LOG_CONFIGS), TopicSpec(dlq(topic))]
    async with private_topics(bootstrap, specs):
        try:
            records = event_records(phones(subjects_n), n, rid)
            seconds = await produce_bulk(bootstrap, topic, records)
            del records
            ends = await topic_ends(bootstrap, topic)
            report.note(f"setup: {n:,} events produced in {seconds:.1f} s ({n / seconds:,.0f}/s)")
            await _compare(report, bootstrap, topic, ends, n, repeats, settings.database_url, group)
        finally:
            await delete_groups(bootstrap, [group])


async def _compare(
    report: Report,
    bootstrap: str,
    topic: str,
    ends: dict[int, int],
    n: int,
    repeats: int,
    admin_url: str,
    group: str,
) -> None:
    kept: list[Rebuilt] = []

    def consuming(each: Callable[[Any], object] | None) -> Callable[[], Awaitable[float]]:
        async def side() -> float:
            seconds, count = await raw_consume(bootstrap, topic, ends, each)
            if count != n:
                raise RuntimeError(f"raw consume read {count:,} records, expected {n:,}")
            return count / seconds

        return side

    held: list[int] = []  # bytes of RSS the rebuild's result holds (after - before)

    async def read_and_fold() -> float:
        kept.clear()  # one Rebuilt in memory at a time
        gc.collect()
        before = rss_bytes(os.getpid()) or 0
        with py_spy(os.getpid(), PROFILES / f"rebuild-{topic}.pyspy.txt"):
            seconds, rebuilt = await rebuild(bootstrap, topic)
        held.append((rss_bytes(os.getpid()) or 0) - before)
        if rebuilt.records != n or rebuilt.rejected:
            raise RuntimeError(f"rebuild read {rebuilt.records:,}, rejected {rebuilt.rejected}")
        kept.append(rebuilt)
        return rebuilt.records / seconds

    # Two floors under any rebuild that reads the values, in the same rounds: every
    # value decoded from JSON (nothing validated), and every value validated as the
    # projector does (parse_consent_event: the contract's rules), nothing folded.
    sides = {
        "raw consume": consuming(None),
        "consume+JSON decode": consuming(orjson.loads),
        "consume+validate": consuming(parse_consent_event),
        "rebuild read+fold": read_and_fold,
    }
    rates = await alternate(repeats, sides)
    raw_rate = median(rates["raw consume"])
    fold_rate = median(rates["rebuild read+fold"])
    report.figure(f"raw consume (median of {repeats})", raw_rate, "events/s")
    report.note(f"raw consume runs: {spread(rates['raw consume'])}")
    for floor in ("consume+JSON decode", "consume+validate"):
        rate = median(rates[floor])
        report.figure(f"{floor} (median of {repeats})", rate, "events/s")
        report.figure(f"{floor} ÷ raw consume", rate / raw_rate, "ratio")
    report.figure(f"rebuild read+fold (median of {repeats})", fold_rate, "events/s")
    report.note(f"rebuild read+fold runs: {spread(rates['rebuild read+fold'])}")
    report.figure("rebuild read+fold ÷ raw consume", fold_rate / raw_rate, "ratio", at_least=0.5)
    rebuilt = kept[0]
    report.note(f"rebuilt: {len(rebuilt.states):,} subjects, {len(rebuilt.events):,} events")
    # rebuild_states holds every event until the write.
    report.figure("rebuild memory held per event", max(held) / n, "bytes")

    async with private_database(admin_url, "rebuild") as url:
        with py_spy(os.getpid(), PROFILES / f"write-{topic}.pyspy.txt"):
            write_seconds = await write(url, rebuilt, bootstrap)
    total_rate = n / (n / fold_rate + write_seconds)
    report.note(
        f"write_rebuilt: {write_seconds:.1f} s for {n:,} events ({n / write_seconds:,.0f}/s)"
    )
    report.figure("rebuild read+fold+write", total_rate, "events/s")
    report.figure(
        "rebuild read+fold+write ÷ raw consume", total_rate / raw_rate, "ratio", at_least=0.5
    )
    kept.clear()
    del rebuilt

    async with private_database(admin_url, "projection") as url:
        with py_spy(os.getpid(), PROFILES / f"projection-{topic}.pyspy.txt"):
            projected = await project(bootstrap, topic, url, group, ends)
    rate = projected.events / projected.seconds
    report.note(
        f"projection: {projected.events:,} events, {projected.subjects:,} subjects "
        f"in {projected.seconds:.1f} s"
    )
    report.figure("projection (live projector loop)", rate, "events/s")
    report.figure("projection ÷ raw consume", rate / raw_rate, "ratio")


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, help="default 1,000,000")
    parser.add_argument("--subjects", type=int, help="default 100,000")
    parser.add_argument("--repeats", type=int, default=3, help="runs of (a) and (c) (median)")
    args = parser.parse_args(argv)
    n = sized(args.events, 1_000_000, args.quick)
    subjects = sized(args.subjects, 100_000, args.quick)
    report = Report(
        "bench_projection",
        f"{n:,} events over {subjects:,} subjects, 3 partitions, {args.repeats} runs of "
        f"raw consume and rebuild read+fold, one projection and one write",
    )
    report.header()
    asyncio.run(run(report, n, subjects, args.repeats))
    report.write(args.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
