"""What the consent ledger costs (docs/erasure.md, section 9): the ledger writer beside the
projector and a bare transactional copy, the rebuild from the ledger beside the one from
the log, and erasing one person.

    python -m bench.bench_ledger [--quick] [--events N] [--subjects N] [--repeats N]
                                 [--persons N]

A private topic laid out as `consent.events.v1` is (3 partitions, LogAppendTime) is
filled with bench_projection's events (N over N/10 subjects, 15 % signed opt-ins).
Then, in rounds whose order alternates, these loops read all of it:

(a) ledger writer: `LedgerWriter` wired as services/consent/ledger/running.py wires it
    (a group of its own, BatchConsumer of CONSENT_MAX_BATCH, committing inside its
    transactions), into a fresh ledger topic, on a private database whose key table is
    emptied before each round: every key is created on first sight, as when a
    deployment first copies its history into the ledger (docs/erasure.md, section 8);
(b) projector: bench_projection's loop (`project`), into a fresh private database;
(c) transactional copy: bench/passthrough.py's loop, each record produced unchanged to a
    fresh topic, one transaction per batch with the consumed offsets: what Kafka costs;
(d) (a) and (b) at once in this process, as the consent service runs them, each on its
    own group, ledger topic and database.
Each is timed from its first batch fetched until its last is committed; medians. Then,
in this process, the writer's own CPU per event (describe, then seal and chain).

Then `rebuild_states` (from the log) and `rebuild_states_from_ledger` (the last round's
ledger, its key cache cold each time, as a new process's) alternate; medians.

Last, the ledger's database is filled with the N events' projection (ConsentStore.apply,
chunks of 5,000, as bench/consent_seed.py fills one), and --persons people, each a
subject of the log with its events, a linked BSUID and an erasure request, are erased
one at a time (`ErasureJob.erase`: consent.erase_person); median and slowest."""

import asyncio
import functools
import gc
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import ProducerFenced

# Imported first for its side effect too: the ERASURE_* settings of the tests' keys.
from bench.bench_projection import alternate, event_records, project
from bench.consent_seed import phones
from bench.figures import Report, base_parser, median, sized, spread
from bench.kafka_io import produce_bulk
from bench.passthrough import passthrough
from bench.private import (
    TopicSpec,
    delete_groups,
    private_database,
    private_topics,
    run_id,
    topic_ends,
)
from services.consent.erasure_job import Erased, ErasureJob, people_of
from services.consent.ledger.entries import event_sealable
from services.consent.ledger.writer import LedgerWriter
from services.consent.rebuild import Rebuilt, rebuild_states, rebuild_states_from_ledger
from services.consent.settings import ConsentSettings
from services.consent.store import ConsentStore
from services.consent.suppressions import suppression_list
from shared.consent.state import LoggedEvent, SubjectState
from shared.contract.events import ConsentEvent
from shared.db.pool import open_pool
from shared.erasure.data_keys import DataKey
from shared.erasure.key_cache import CachedDataKeys
from shared.erasure.key_store import PostgresKeyStore
from shared.erasure.settings import ErasureSettings
from shared.kafka.batch_consumer import BatchConsumer
from shared.kafka.clients import durable_producer, group_consumer
from shared.kafka.topic_specs import EVENT_LOG_CONFIGS, LEDGER_CONFIGS
from shared.ledger.entries import GENESIS, seal_entry
from shared.service_runner import tune_cyclic_gc
from shared.topics import dlq
from tests.support.signing import ERASURE_INDEX, PSEUDONYM_KEY, TRUST, VERIFY_KEYS

CHUNK = 5000  # events per ConsentStore.apply while filling the projection
TIMEOUT = 900.0  # seconds a side may take before the run is called failed
BOTH = "projector + ledger writer, one process"


@dataclass
class Progress:
    """When a loop got its first batch and when it had handled the last record of every
    partition (up to the end offsets taken before it started)."""

    ends: dict[int, int]
    first: float = 0.0
    last: float = 0.0
    batches: int = 0
    transactions: int = 0
    done_to: dict[int, int] = field(default_factory=dict)

    def fetched(self) -> None:
        if not self.first:
            self.first = time.perf_counter()

    def handled(self, records: Sequence[ConsumerRecord]) -> None:
        for record in records:
            if record.offset >= self.done_to.get(record.partition, 0):
                self.done_to[record.partition] = record.offset + 1
        if self.complete() and not self.last:
            self.last = time.perf_counter()

    def complete(self) -> bool:
        return all(self.done_to.get(p, 0) >= end for p, end in self.ends.items())

    def rate(self, n: int) -> float:
        return n / (self.last - self.first)


class _Watched:
    """The consumer bench.passthrough reads from: notes when the first records arrive,
    and stops the loop once every partition was fetched to its end (the batch in hand is
    still copied and committed before the loop looks at `stopping` again)."""

    def __init__(
        self, consumer: AIOKafkaConsumer, progress: Progress, stopping: asyncio.Event
    ) -> None:
        self.consumer, self.progress, self.stopping = consumer, progress, stopping

    async def getmany(self, *partitions: Any, timeout_ms: int, max_records: int) -> Any:
        fetched = await self.consumer.getmany(
            *partitions, timeout_ms=timeout_ms, max_records=max_records
        )
        if fetched:
            self.progress.fetched()
            self.progress.batches += 1
            self.progress.transactions += 1
            for records in fetched.values():
                self.progress.handled(records)
            if self.progress.complete():
                self.stopping.set()
        return fetched

    async def commit(self, offsets: Any) -> None:  # not called: the copy is transactional
        await self.consumer.commit(offsets)


@dataclass
class Run:
    """What the sides share: the source, its end offsets and the ledger's database."""

    bootstrap: str
    rid: str
    source: str
    ends: dict[int, int]
    n: int
    admin_url: str
    pool: Any
    max_batch: int
    groups: list[str] = field(default_factory=list)
    # The last ledger written, its writer's group and its keys' cache: for the rebuild
    # from the ledger and the erasures.
    ledger: tuple[str, str] | None = None
    keys: CachedDataKeys | None = None
    captured: list[ConsumerRecord] = field(default_factory=list)
    sides: dict[str, list[Progress]] = field(default_factory=dict)
    beside: list[float] = field(default_factory=list)  # the projector's rate in BOTH

    def topic(self, name: str, round_: int) -> str:
        return f"bench.{self.rid}.{name}-{round_}"

    def group(self, name: str, round_: int) -> str:
        self.groups.append(f"bench-{self.rid}-{name}-{round_}")
        return self.groups[-1]


async def _until_complete(progress: Progress, task: "asyncio.Task[None]") -> None:
    async with asyncio.timeout(TIMEOUT):
        while not progress.last:
            if task.done():
                task.result()
                raise RuntimeError("the loop ended early")
            await asyncio.sleep(0.02)


# ------------------------------------------------------------------ (a) ledger writer


async def write_ledger(run: Run, round_: int, side: str = "ledger writer") -> float:
    name = "ledger" if side == "ledger writer" else "both-ledger"
    ledger, group = run.topic(name, round_), run.group(name, round_)
    await run.pool.execute("DELETE FROM consent.data_keys")  # keys made on first sight
    keys = ErasureSettings().data_keys(PostgresKeyStore(run.pool))
    writer = LedgerWriter(
        source=run.source,
        ledger=ledger,
        describe=functools.partial(event_sealable, trust=TRUST),
        keys=keys,
        index=ERASURE_INDEX,
        pool=run.pool,
        bootstrap=run.bootstrap,
        group_id=group,
    )
    progress = Progress(run.ends)
    capture = not run.captured

    async def handle(batch: list[ConsumerRecord]) -> None:
        progress.fetched()
        await writer.handle(batch)
        progress.batches += 1
        progress.transactions += len({record.partition for record in batch})
        progress.handled(batch)
        if capture:
            run.captured.extend(batch)

    consumer = group_consumer(run.bootstrap, group)
    await consumer.start()
    loop = BatchConsumer(
        consumer,
        handle,
        name="ledger",
        max_records=run.max_batch,
        commit=False,
        fatal=(ProducerFenced,),
    )
    consumer.subscribe([run.source], listener=loop.listener(writer))
    running = loop.start()
    try:
        await _until_complete(progress, running.task)
    finally:
        await running.stop()
        await writer.stop()
        await consumer.stop()
    run.ledger, run.keys = (ledger, group), keys
    run.sides.setdefault(side, []).append(progress)
    return progress.rate(run.n)


# ------------------------------------------------------------------ (b) projector


async def run_projector(run: Run, round_: int) -> float:
    group = run.group("projector", round_)
    async with private_database(run.admin_url, "projection") as url:
        projected = await project(run.bootstrap, run.source, url, group, run.ends)
    if projected.events != run.n:
        raise RuntimeError(f"the projector wrote {projected.events:,} events of {run.n:,}")
    return projected.events / projected.seconds


async def run_both(run: Run, round_: int) -> float:
    """The projector and the ledger writer in one process, as the consent service runs
    them: from the first batch of either until both are done. The projector's own rate
    beside the writer is kept in `run.beside`."""
    group = run.group("both-projector", round_)
    async with private_database(run.admin_url, "projection") as url:
        writing = asyncio.create_task(write_ledger(run, round_, BOTH))
        try:
            projected = await project(run.bootstrap, run.source, url, group, run.ends)
            finished = time.perf_counter()  # a few ms late: the loop stopped, rows counted
        finally:
            await writing
    if projected.events != run.n:
        raise RuntimeError(f"the projector wrote {projected.events:,} events of {run.n:,}")
    writer = run.sides[BOTH][-1]
    run.beside.append(projected.events / projected.seconds)
    first = min(writer.first, finished - projected.seconds)
    return run.n / (max(writer.last, finished) - first)


# ------------------------------------------------------------------ (c) transactional copy


async def copy(run: Run, round_: int) -> float:
    target, group = run.topic("copy", round_), run.group("copy", round_)
    progress, stopping = Progress(run.ends), asyncio.Event()
    consumer = group_consumer(run.bootstrap, group, run.source)
    producer = durable_producer(run.bootstrap, transactional_id=group)
    await producer.start()
    await consumer.start()
    try:
        async with asyncio.timeout(TIMEOUT):
            await passthrough(
                _Watched(consumer, progress, stopping),
                producer,
                target,
                group,
                run.max_batch,
                True,
                stopping,
            )
        progress.last = time.perf_counter()  # the last transaction committed
    finally:
        await consumer.stop()
        await producer.stop()
    run.sides.setdefault("transactional copy", []).append(progress)
    return progress.rate(run.n)


# ------------------------------------------------------------------ the writer's CPU


def writer_cpu(records: list[ConsumerRecord]) -> tuple[float, float]:
    """Microseconds per record: describing it (validated, its signature checked, as the
    projector accepts it), then pseudonyms, sealing, chaining and the entry's JSON; the
    keys at hand, as from the cache."""
    gc.collect()
    started = time.perf_counter()
    items = [event_sealable(record, TRUST) for record in records]
    describe = (time.perf_counter() - started) / len(records) * 1e6
    sealables = [item for item in items if item is not None]
    keys: dict[str, DataKey] = {}
    for item in sealables:
        keys.setdefault(ERASURE_INDEX.of(item.identifiers[0]), DataKey.generate())
    head = GENESIS
    started = time.perf_counter()
    for item in sealables:
        names = tuple(ERASURE_INDEX.of(i) for i in item.identifiers)
        entry = seal_entry(item, names, keys[names[0]], head)
        head = entry.chain
        entry.model_dump_json().encode()
    seal = (time.perf_counter() - started) / len(records) * 1e6
    return describe, seal


async def copying(report: Report, run: Run, repeats: int) -> None:
    def side(action: Callable[[Run, int], Awaitable[float]]) -> Callable[[], Awaitable[float]]:
        rounds = iter(range(repeats))
        return lambda: action(run, next(rounds))

    tune_cyclic_gc()  # as the consent service runs all three (the projector tunes it too)
    sides = {
        "ledger writer": side(write_ledger),
        "projector": side(run_projector),
        "transactional copy": side(copy),
        BOTH: side(run_both),
    }
    rates = await alternate(repeats, sides)
    ledger, projector, floor, both = (median(rates[name]) for name in sides)
    for name in sides:
        report.figure(f"{name} (median of {repeats})", median(rates[name]), "events/s")
        report.note(f"{name} runs: {spread(rates[name])}")
    report.figure("ledger writer ÷ projector", ledger / projector, "ratio")
    report.figure("ledger writer ÷ transactional copy", ledger / floor, "ratio")
    report.figure("projector ÷ transactional copy", projector / floor, "ratio")
    report.figure("both in one process ÷ projector alone", both / projector, "ratio")
    beside = median(run.beside)
    report.figure("projector beside the writer (its own rate)", beside, "events/s")
    report.note(f"projector beside the writer runs: {spread(run.beside)}")
    report.figure("projector beside the writer ÷ alone", beside / projector, "ratio")
    for name, runs in run.sides.items():
        report.note(
            f"{name}: {runs[0].batches} batches, {runs[0].transactions} Kafka transactions "
            f"(max {run.max_batch} records a batch)"
        )
    describe, seal = writer_cpu(run.captured)
    report.figure("ledger writer per event, all told", 1e6 / ledger, "µs")
    report.figure("  of it, describe (validate, check signature)", describe, "µs")
    report.figure("  of it, pseudonyms, seal, chain, entry JSON", seal, "µs")
    report.figure("projector per event, all told", 1e6 / projector, "µs")
    run.captured.clear()


# ------------------------------------------------------------------ rebuilds


async def rebuilding(report: Report, run: Run, repeats: int) -> list[LoggedEvent]:
    """Returns the events the log's rebuild read, for the projection the erasures need."""
    assert run.ledger is not None
    ledger, writer_group = run.ledger
    kept: dict[str, Rebuilt] = {}

    def checked(name: str, rebuilt: Rebuilt, seconds: float) -> float:
        if rebuilt.records != run.n or rebuilt.rejected or len(rebuilt.events) != run.n:
            raise RuntimeError(f"{name}: {rebuilt.records:,} read, {len(rebuilt.events):,} kept")
        kept[name] = rebuilt
        return run.n / seconds

    async def from_log() -> float:
        kept.pop("log", None)
        started = time.perf_counter()
        rebuilt = await rebuild_states(run.bootstrap, trust=TRUST, topic=run.source)
        return checked("log", rebuilt, time.perf_counter() - started)

    async def from_ledger() -> float:
        kept.pop("ledger", None)
        started = time.perf_counter()
        # As `python -m services.consent.rebuild --from ledger` does, in a new process.
        rebuilt = await rebuild_states_from_ledger(
            run.bootstrap,
            ErasureSettings().data_keys(PostgresKeyStore(run.pool)),
            writer_group=writer_group,
            ledger=ledger,
            topic=run.source,
            suppression=await suppression_list(run.pool, ERASURE_INDEX),
        )
        return checked("ledger", rebuilt, time.perf_counter() - started)

    rates = await alternate(repeats, {"from the log": from_log, "from the ledger": from_ledger})
    if kept["log"].states != kept["ledger"].states:
        raise RuntimeError("the rebuild from the ledger differs from the one from the log")
    log_rate, ledger_rate = median(rates["from the log"]), median(rates["from the ledger"])
    for name, rate in (("from the log", log_rate), ("from the ledger", ledger_rate)):
        report.figure(f"rebuild {name} (median of {repeats})", rate, "events/s")
        report.figure(f"rebuild {name}, seconds", run.n / rate, "s")
        report.note(f"rebuild {name} runs: {spread(rates[name])}")
    report.figure("rebuild from the ledger ÷ from the log", ledger_rate / log_rate, "ratio")
    report.note(f"rebuilt: {len(kept['log'].states):,} subjects, equal from both")
    return kept["log"].events


# ------------------------------------------------------------------ erasures


def _bsuid(index: int) -> str:
    return f"US.{9_000_000_000_000_000_000 + index:019d}"


def _person_events(subject: str, bsuid: str, now: datetime) -> list[ConsentEvent]:
    """A linked BSUID and the erasure request: the person's last two events."""
    at = (now - timedelta(minutes=1)).isoformat()
    link = {
        "event_id": f"link-{subject}",
        "type": "IdentityLinked",
        "subject": subject,
        "linked": bsuid,
        "occurred_at": at,
        "source": "whatsapp_webhook",
        "evidence": {"webhook": "contacts"},
    }
    request = {
        "event_id": f"erasure-{subject}",
        "type": "ErasureRequested",
        "subject": subject,
        "occurred_at": at,
        "source": "erasure_cli",
        "evidence": {"requested_by": "dpo@example.com", "reason": "Art. 17"},
    }
    return [ConsentEvent.model_validate(body) for body in (link, request)]


async def fill_projection(run: Run, store: ConsentStore, events: list[LoggedEvent]) -> float:
    started = time.perf_counter()
    for start in range(0, len(events), CHUNK):
        part = events[start : start + CHUNK]
        positions: dict[int, int] = {}
        for event in part:
            positions[event.partition] = max(positions.get(event.partition, 0), event.offset + 1)
        await store.apply(run.source, part, positions)
    return time.perf_counter() - started


async def erasing(
    report: Report, run: Run, events: list[LoggedEvent], subjects: list[str], persons: int
) -> None:
    assert run.keys is not None
    store = ConsentStore(run.pool, ERASURE_INDEX)
    seconds = await fill_projection(run, store, events)
    chosen = subjects[:: max(1, len(subjects) // persons)][:persons]
    bsuids = [_bsuid(i) for i in range(len(chosen))]
    now, offset = datetime.now(UTC), run.ends[0]
    added: list[LoggedEvent] = []
    for subject, bsuid in zip(chosen, bsuids, strict=True):
        for event in _person_events(subject, bsuid, now):
            added.append(LoggedEvent.from_log(event, now, 0, offset))
            offset += 1
    await store.apply(run.source, added, {0: offset})
    await run.keys.for_writing([ERASURE_INDEX.of(b) for b in bsuids])  # the BSUIDs' keys
    await run.pool.execute("ANALYZE")
    counts = await run.pool.fetchrow(
        "SELECT (SELECT count(*) FROM consent.events) AS events,"
        " (SELECT count(*) FROM consent.subjects) AS subjects,"
        " (SELECT count(*) FROM consent.data_keys) AS keys"
    )
    report.note(
        f"projection: {counts['events']:,} events, {counts['subjects']:,} subjects, "
        f"{counts['keys']:,} data keys (ConsentStore.apply: {seconds:.1f} s)"
    )
    states: list[SubjectState] = []
    for subject in chosen:
        state = await store.subject(subject)
        if state is None or state.erasure_event_id is None:
            raise RuntimeError(f"no erasure requested in {subject}'s state")
        states.append(state)
    people = people_of(states)
    job = ErasureJob(run.pool, ERASURE_INDEX, timedelta(0), keys=run.keys)
    times: list[float] = []
    done: list[Erased] = []
    for person in people:
        started = time.perf_counter()
        done.append(await job.erase(person))
        times.append((time.perf_counter() - started) * 1e3)
    for person, erased in zip(people, done, strict=True):
        if not erased.first_time or erased.keys_deleted != len(person.identifiers):
            raise RuntimeError(f"erasing {erased.erasure_event_id} left keys: {erased}")
    report.figure(f"erase one person (median of {len(people)})", median(times), "ms")
    report.figure("erase one person, slowest", max(times), "ms")
    report.note(f"erasure runs (ms): {', '.join(f'{t:.2f}' for t in times)}")
    report.note(
        "each person: "
        f"{median([e.identifiers for e in done]):g} identifiers, "
        f"{median([e.events_deleted for e in done]):g} events, "
        f"{median([e.keys_deleted for e in done]):g} data keys deleted (medians)"
    )
    ttl = ErasureSettings().key_cache_seconds
    report.figure(
        "a deleted key forgotten by every other process within (by construction)", ttl, "s"
    )
    report.note(
        "not measured: each process caches a key at most ERASURE_KEY_CACHE_SECONDS after "
        "the read that fetched it (shared/erasure/key_cache.py); the erasing process "
        "forgets it at once"
    )


# ------------------------------------------------------------------ the run


async def main_async(report: Report, n: int, subjects_n: int, repeats: int, persons: int) -> None:
    settings = ConsentSettings(event_verify_keys=VERIFY_KEYS, pseudonym_key=PSEUDONYM_KEY)
    bootstrap = settings.kafka_bootstrap_servers
    rid = run_id()
    source = f"bench.{rid}.consent-events"
    specs = [TopicSpec(source, 3, EVENT_LOG_CONFIGS), TopicSpec(dlq(source))]
    for round_ in range(repeats):
        specs.append(TopicSpec(f"bench.{rid}.ledger-{round_}", 3, LEDGER_CONFIGS))
        specs.append(TopicSpec(f"bench.{rid}.both-ledger-{round_}", 3, LEDGER_CONFIGS))
        specs.append(TopicSpec(f"bench.{rid}.copy-{round_}", 3))
    subjects = phones(subjects_n)
    async with (
        private_topics(bootstrap, specs),
        private_database(settings.database_url, "ledger") as url,
    ):
        pool = await open_pool(url, max_size=8)
        run = Run(bootstrap, rid, source, {}, n, settings.database_url, pool, settings.max_batch)
        try:
            records = event_records(subjects, n, rid)
            seconds = await produce_bulk(bootstrap, source, records)
            del records
            run.ends = await topic_ends(bootstrap, source)
            report.note(f"setup: {n:,} events produced in {seconds:.1f} s ({n / seconds:,.0f}/s)")
            await copying(report, run, repeats)
            events = await rebuilding(report, run, repeats)
            await erasing(report, run, events, subjects, persons)
        finally:
            await pool.close()
            await delete_groups(bootstrap, run.groups)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, help="default 50,000")
    parser.add_argument("--subjects", type=int, help="default a tenth of the events")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of each side (median)")
    parser.add_argument("--persons", type=int, help="people erased one by one, default 30")
    args = parser.parse_args(argv)
    n = sized(args.events, 50_000, args.quick, minimum=100)
    subjects = args.subjects if args.subjects is not None else max(10, n // 10)
    persons = sized(args.persons, 30, args.quick, minimum=5)
    if persons > subjects:
        parser.error("--persons is more than the subjects")
    # The services' info lines (partitions assigned, each erasure) are not the report.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    report = Report(
        "bench_ledger",
        f"{n:,} events over {subjects:,} subjects, 3 partitions, {args.repeats} rounds of "
        f"each side; {persons} people erased",
    )
    report.header()
    asyncio.run(main_async(report, n, subjects, args.repeats, persons))
    report.write(args.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
