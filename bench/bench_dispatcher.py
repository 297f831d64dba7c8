"""End-to-end dispatcher throughput ÷ a bare consume -> produce passthrough, on the
same broker, topics and batches, in the same run; decision latency at 50 % of the
measured peak; the dispatcher's RSS; the fence's wait.

    python -m bench.bench_dispatcher [--quick] [--requests N] [--recipients N] [--repeats N]

The dispatcher is the real one, `services.dispatcher.main`, in a process of its own
(`bench.isolated_service`: the contract's topic names bound to private topics, so
nothing running beside the benchmark sees its records, nor it theirs), deciding
against a private, migrated database whose consent projection holds the recipients
with mixed consent (half granted, a quarter opted out, a quarter never seen).

Throughput is measured on a backlog: the requests are produced once, then each
side (the dispatcher, the plain passthrough, the transactional passthrough, and
the validating passthrough: a floor, `bench.passthrough --validate`) is started
as a fresh process with a fresh group positioned at the backlog's start,
and timed from the first output record arriving on its output topic to the last
(read_committed). Sides alternate, in reversed order every other round; medians.
Before every dispatcher run its schema is reset to the same state (the run's
decisions gone, 200,000 earlier ones kept, analysed: see `forget_decisions`), so
each run decides the same requests from the same state.
"""

import asyncio
import sys
import time
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from random import Random

import asyncpg
import orjson

from bench.consent_seed import phones, seed_subjects
from bench.figures import Report, base_parser, median, percentile, sized, spread
from bench.kafka_io import Arrivals, Record, produce_bulk
from bench.machine import CpuShare, RssSampler
from bench.private import (
    TopicSpec,
    delete_groups,
    free_port,
    position_group,
    private_database,
    private_topics,
    run_id,
    topic_ends,
)
from bench.processes import ROOT, BenchProcess, histogram_quantile, py_spy, scrape
from shared.kafka.clients import durable_producer
from shared.settings import CommonSettings
from shared.topics import CONSENT_EVENTS, DISPATCH_DECISIONS, MESSAGE_REQUESTS, MESSAGES_OUTBOUND
from shared.topics import dlq as dlq_of

PURPOSES = ("event_reminder",) * 8 + ("registration_confirmation", "educational_material")
MAX_BATCH = 2000  # the dispatcher's default DISPATCHER_MAX_BATCH; the passthrough's too


@dataclass(frozen=True)
class Topics:
    requests: str
    decisions: str
    outbound: str
    consent: str
    scratch: str

    @classmethod
    def for_run(cls, rid: str) -> "Topics":
        return cls(
            *(
                f"bench.{rid}.{n}"
                for n in ("requests", "decisions", "outbound", "consent", "scratch")
            )
        )

    def contract(self) -> dict[str, str]:
        return {
            MESSAGE_REQUESTS: self.requests,
            DISPATCH_DECISIONS: self.decisions,
            MESSAGES_OUTBOUND: self.outbound,
            CONSENT_EVENTS: self.consent,
        }

    def specs(self) -> list[TopicSpec]:
        names = [self.requests, self.decisions, self.outbound, self.consent, self.scratch]
        return [TopicSpec(n) for n in [*names, dlq_of(self.requests), dlq_of(self.consent)]]


@dataclass
class Bench:
    rid: str
    bootstrap: str
    database_url: str
    topics: Topics
    log_dir: Path
    max_batch: int = MAX_BATCH
    retry_backoff_ms: int | None = None  # an experiment; None: aiokafka's 100 ms
    groups: list[str] = field(default_factory=list)

    def group(self, label: str) -> str:
        self.groups.append(f"bench-{self.rid}-{label}")
        return self.groups[-1]


@dataclass
class SideRun:
    throughput: float
    seconds: float  # first output to last
    rss_mib: float
    cpu: float  # share of a core the process used while measured
    retries: int  # produce answers NOT_ENOUGH_REPLICAS (see `retried_produces`)
    metrics: dict[str, float] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)


# ------------------------------------------------------------------ the input


def request_records(recipients: list[str], count: int, prefix: str, seed: int = 7) -> list[Record]:
    rng = Random(seed)
    requested_at = datetime.now(UTC).isoformat()
    records: list[Record] = []
    for i in range(count):
        recipient = recipients[rng.randrange(len(recipients))]
        body = {
            "request_id": f"{prefix}-{i}",
            "recipient": recipient,
            "purpose": PURPOSES[rng.randrange(len(PURPOSES))],
            "message": {"type": "text", "text": {"body": "Reminder: the workshop starts at 10:00"}},
            "requested_at": requested_at,
        }
        records.append((recipient.encode(), orjson.dumps(body)))
    return records


HISTORY = 200_000  # earlier decisions each run starts with

_HISTORY = """
INSERT INTO dispatcher.decisions (request_id, recipient, purpose, decision, reason,
    decided_at, source_partition, source_offset, decision_json)
SELECT 'history-' || g, '+7916' || lpad(((g * 7919) % 10000000)::text, 7, '0'),
    'event_reminder', 'dispatched', 'consented', now() - interval '3 days', 0, g, '{}'::jsonb
FROM generate_series(1, $1::int) AS g
"""


async def forget_decisions(database_url: str) -> None:
    """The dispatcher's schema as a running system's: the run's own decisions gone, and
    HISTORY decisions of three days ago (outside the frequency window), analysed.
    An empty, just truncated table would measure something else: the prepared
    idempotency lookup (`request_id = ANY($1)`) settles on a generic plan while the
    table is tiny, a sequential scan it keeps as the table grows, until autovacuum
    analyses it (measured here: 84 ms per batch instead of 2)."""
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch(
            "SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables"
            " WHERE schemaname = 'dispatcher'"
        )
        await conn.execute(f"TRUNCATE {', '.join(r['t'] for r in tables)}")
        await conn.execute(_HISTORY, HISTORY)
        await conn.execute("ANALYZE dispatcher.decisions")
    finally:
        await conn.close()


# ------------------------------------------------------------------ the sides


def retried_produces(process: BenchProcess) -> int:
    """Partitions of transactional produces the broker answered NOT_ENOUGH_REPLICAS
    (one line per partition in aiokafka's log; one answer for several partitions
    is one wait). A Kafka 4 broker verifies each transactional produce of an older
    protocol version with the transaction coordinator (KIP-890) and answers so while
    the previous transaction's markers are still being written; aiokafka retries
    after retry_backoff_ms (100 ms by default), and the whole batch waits."""
    try:
        return process.log_path.read_text(errors="replace").count("NotEnoughReplicasError")
    except OSError:
        return 0


# Whose coroutine methods bench.isolated_service times (a few µs per call, per batch).
STAGES = ",".join(
    [
        "services.dispatcher.gate:Gate",
        "services.dispatcher.store:DispatcherStore",
        "services.dispatcher.fence:Fence",
    ]
)


def dispatcher_process(b: Bench, label: str, group: str, port: int) -> BenchProcess:
    env = {
        "BENCH_STAGES": str(b.log_dir / f"{label}.stages.json"),
        "BENCH_STAGE_CLASSES": STAGES,
        "KAFKA_BOOTSTRAP_SERVERS": b.bootstrap,
        "DATABASE_URL": b.database_url,
        "DISPATCHER_GROUP_ID": group,
        "DISPATCHER_INSTANCE_ID": f"bench-{b.rid}-{label}",
        "DISPATCHER_HTTP_PORT": str(port),
        "DISPATCHER_SENDER_ENABLED": "false",
        "DISPATCHER_MAX_BATCH": str(b.max_batch),
        "BENCH_TOPICS": orjson.dumps(b.topics.contract()).decode(),
    }
    if b.retry_backoff_ms is not None:
        env["BENCH_RETRY_BACKOFF_MS"] = str(b.retry_backoff_ms)
    return BenchProcess(label, ["bench.isolated_service", "dispatcher"], env, b.log_dir)


async def dispatcher_run(b: Bench, round_: int, starts: dict[int, int], n: int) -> SideRun:
    await forget_decisions(b.database_url)
    label = f"dispatcher-{round_}"
    group = b.group(label)
    await position_group(b.bootstrap, group, b.topics.requests, starts)
    port = free_port()
    async with Arrivals(b.bootstrap, b.topics.decisions) as decisions:
        decisions.keep_values = round_ == 0
        with (
            dispatcher_process(b, label, group, port) as process,
            py_spy(process.pid, b.log_dir / f"{label}.pyspy.txt"),
        ):
            async with RssSampler(process.pid) as rss, CpuShare(process.pid) as cpu:
                await decisions.wait_for(n, timeout=max(180.0, n / 200), alive=process.alive)
            metrics = await scrape(f"http://127.0.0.1:{port}")
    outcomes: Counter[str] = Counter()
    for value in decisions.values:
        body = orjson.loads(value)
        outcomes[f"{body['decision']}/{body['reason']}"] += 1
    retries = retried_produces(process)
    seconds = decisions.last_at - decisions.first_at
    return SideRun(
        decisions.throughput(), seconds, rss.peak_mib, cpu.share, retries, metrics, outcomes
    )


async def passthrough_run(
    b: Bench, round_: int, starts: dict[int, int], n: int, side: str
) -> SideRun:
    """`side`: passthrough, passthrough-tx (transactional) or passthrough-validate."""
    transactional, validate = side == "passthrough-tx", side == "passthrough-validate"
    label = f"{side}-{round_}"
    group = b.group(label)
    await position_group(b.bootstrap, group, b.topics.requests, starts)
    args = ["bench.passthrough", "--bootstrap", b.bootstrap, "--source", b.topics.requests]
    args += ["--target", b.topics.scratch, "--group", group, "--max-batch", str(b.max_batch)]
    args += ["--transactional"] if transactional else []
    args += ["--validate"] if validate else []
    if b.retry_backoff_ms is not None:
        args += ["--retry-backoff-ms", str(b.retry_backoff_ms)]
    async with Arrivals(b.bootstrap, b.topics.scratch) as outputs:
        with (
            BenchProcess(label, args, {}, b.log_dir) as process,
            py_spy(process.pid, b.log_dir / f"{label}.pyspy.txt"),
        ):
            async with RssSampler(process.pid) as rss, CpuShare(process.pid) as cpu:
                await outputs.wait_for(n, timeout=max(120.0, n / 500), alive=process.alive)
    seconds = outputs.last_at - outputs.first_at
    return SideRun(
        outputs.throughput(), seconds, rss.peak_mib, cpu.share, retried_produces(process)
    )


# ------------------------------------------------------------------ latency at half load


@dataclass
class Latency:
    rate: float
    achieved: float
    measured: int
    from_ack: list[float]
    from_send: list[float]
    to_created: list[float]  # ack -> the dispatcher's send() of the decision
    created_to_read: list[float]  # that send -> the decision readable and read
    rss_mib: float
    cpu: float
    retries: int
    seconds: float  # first send to the last decision read
    metrics: dict[str, float]


async def paced_produce(
    bootstrap: str, topic: str, records: list[tuple[str, bytes | None, bytes]], rate: float
) -> tuple[dict[str, float], dict[str, float], float]:
    """Sends at `rate` per second on a 5 ms tick; notes each request's send and ack
    time (epoch seconds, the clock of the records' timestamps)."""
    producer = durable_producer(bootstrap)
    await producer.start()
    sent: dict[str, float] = {}
    acked: dict[str, float] = {}
    try:
        futures = []
        started = time.perf_counter()
        i = 0
        while i < len(records):
            due = min(len(records), int((time.perf_counter() - started) * rate) + 1)
            for request_id, key, value in records[i:due]:
                sent[request_id] = time.time()
                future = await producer.send(topic, value=value, key=key)
                future.add_done_callback(lambda _, r=request_id: acked.__setitem__(r, time.time()))
                futures.append(future)
            i = due
            await asyncio.sleep(0.005)
        await asyncio.gather(*futures)
        return sent, acked, len(records) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def latency_run(
    b: Bench, recipients: list[str], rate: float, seconds: float, warmup: float
) -> Latency:
    await forget_decisions(b.database_url)
    group = b.group("latency")
    await position_group(
        b.bootstrap, group, b.topics.requests, await topic_ends(b.bootstrap, b.topics.requests)
    )
    total = max(1, int(rate * seconds))
    prefix = f"lat-{b.rid}"
    records = [
        (f"{prefix}-{i}", key, value)
        for i, (key, value) in enumerate(request_records(recipients, total, prefix, seed=11))
    ]
    port = free_port()
    async with Arrivals(b.bootstrap, b.topics.decisions, ids=True) as decisions:
        with dispatcher_process(b, "dispatcher-latency", group, port) as process:
            await process.wait_ready(f"http://127.0.0.1:{port}")
            profile = b.log_dir / "dispatcher-latency.pyspy.txt"
            with py_spy(process.pid, profile):
                async with RssSampler(process.pid) as rss, CpuShare(process.pid) as cpu:
                    started = time.perf_counter()
                    sent, acked, achieved = await paced_produce(
                        b.bootstrap, b.topics.requests, records, rate
                    )
                    await decisions.wait_for(total, timeout=120, alive=process.alive)
                    seconds = time.perf_counter() - started
            metrics = await scrape(f"http://127.0.0.1:{port}")
    skip = int(rate * warmup)
    kept = [r for r, _, _ in records[skip:]]
    return Latency(
        rate=rate,
        achieved=achieved,
        measured=len(kept),
        from_ack=[decisions.arrived[r] - acked[r] for r in kept],
        from_send=[decisions.arrived[r] - sent[r] for r in kept],
        to_created=[decisions.created[r] - acked[r] for r in kept],
        created_to_read=[decisions.arrived[r] - decisions.created[r] for r in kept],
        rss_mib=rss.peak_mib,
        cpu=cpu.share,
        retries=retried_produces(process),
        seconds=seconds,
        metrics=metrics,
    )


# ------------------------------------------------------------------ the figures


def stage_notes(report: Report, label: str, path: Path, seconds: float) -> None:
    """Where the dispatcher's wall time went: per batch, each timed coroutine's mean;
    what handle() does not cover is the consume loop's own (getmany) time."""
    try:
        stages: dict[str, list[float]] = orjson.loads(path.read_bytes())
    except OSError:
        return
    handled = stages.get("Gate.handle", [0.0, 0.0, 0.0])
    batches = handled[1] or 1.0
    parts = sorted(stages.items(), key=lambda item: -item[1][0])
    report.note(
        f"{label}: {handled[1]:,.0f} batches, Gate.handle {handled[0]:.1f} s of the "
        f"{seconds:.1f} s measured; per batch (ms): "
        + ", ".join(f"{name} {total / batches * 1000:.1f}" for name, (total, _, _) in parts)
    )


def fence_figures(report: Report, label: str, metrics: dict[str, float]) -> None:
    count = metrics.get("dispatcher_fence_wait_seconds_count", 0.0)
    if not count:
        report.note(f"{label}: no fence wait observed in /metrics")
        return
    mean_ms = metrics["dispatcher_fence_wait_seconds_sum"] / count * 1000
    p50 = histogram_quantile(metrics, "dispatcher_fence_wait_seconds", 0.5) * 1000
    p99 = histogram_quantile(metrics, "dispatcher_fence_wait_seconds", 0.99) * 1000
    batches = metrics.get("dispatcher_batch_size_count", 0.0)
    mean_batch = metrics.get("dispatcher_batch_size_sum", 0.0) / batches if batches else 0.0
    report.figure(f"fence wait mean, {label}", mean_ms, "ms")
    report.note(
        f"{label}: fence wait p50 <= {p50:g} ms, p99 <= {p99:g} ms (histogram bucket bounds), "
        f"{count:,.0f} fences, {batches:,.0f} batches of {mean_batch:.0f} requests on average"
    )


async def run(
    report: Report,
    n: int,
    recipients_n: int,
    repeats: int,
    latency_seconds: float,
    warmup: float,
    max_batch: int,
    retry_backoff_ms: int | None,
) -> None:
    settings = CommonSettings()
    rid = run_id()
    log_dir = ROOT / ".local" / "bench-logs" / f"dispatcher-{rid}"
    log_dir.mkdir(parents=True, exist_ok=True)
    topics = Topics.for_run(rid)
    bootstrap = settings.kafka_bootstrap_servers
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(private_topics(bootstrap, topics.specs()))
        url = await stack.enter_async_context(private_database(settings.database_url, "dispatcher"))
        b = Bench(rid, bootstrap, url, topics, log_dir, max_batch, retry_backoff_ms)
        stack.push_async_callback(lambda: delete_groups(bootstrap, b.groups))
        recipients = phones(recipients_n)
        started = time.perf_counter()
        kinds = await seed_subjects(url, recipients)
        report.note(
            f"setup: consent projection of {recipients_n:,} recipients "
            f"({', '.join(f'{k} {v:,}' for k, v in sorted(kinds.items()))}) "
            f"in {time.perf_counter() - started:.1f} s; logs in {log_dir}"
        )
        starts = await topic_ends(bootstrap, topics.requests)
        records = request_records(recipients, n, f"req-{rid}")
        seconds = await produce_bulk(bootstrap, topics.requests, records)
        del records
        report.note(f"setup: {n:,} requests produced in {seconds:.1f} s ({n / seconds:,.0f}/s)")

        sides = ("dispatcher", "passthrough", "passthrough-tx", "passthrough-validate")
        runs: dict[str, list[SideRun]] = {side: [] for side in sides}
        for round_ in range(repeats):
            order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
            for side in order:
                if side == "dispatcher":
                    result = await dispatcher_run(b, round_, starts, n)
                else:
                    result = await passthrough_run(b, round_, starts, n, side)
                runs[side].append(result)
                print(f"   round {round_ + 1} {side}: {result.throughput:,.0f}/s", flush=True)

        throughput = {side: median([r.throughput for r in rs]) for side, rs in runs.items()}
        outcomes = runs["dispatcher"][0].outcomes
        report.note(
            "decisions of round 1: "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items(), key=lambda i: -i[1]))
        )
        for side, unit in (
            ("dispatcher", "requests/s"),
            ("passthrough", "records/s"),
            ("passthrough-tx", "records/s"),
            ("passthrough-validate", "records/s"),
        ):
            report.figure(f"{side} throughput (median of {repeats})", throughput[side], unit)
            report.note(
                f"{side} runs: {spread([r.throughput for r in runs[side]])}; CPU "
                + ", ".join(f"{r.cpu:.0%}" for r in runs[side])
                + " of a core; NOT_ENOUGH_REPLICAS produce answers (per partition) "
                + ", ".join(str(r.retries) for r in runs[side])
            )
        report.figure(
            "dispatcher ÷ passthrough",
            throughput["dispatcher"] / throughput["passthrough"],
            "ratio",
            at_least=0.7,
        )
        report.figure(
            "dispatcher ÷ transactional passthrough",
            throughput["dispatcher"] / throughput["passthrough-tx"],
            "ratio",
        )
        # The floor: validating each request as the dispatcher does, and nothing else
        # (no state, no decision, one output), already costs this share.
        report.figure(
            "validating passthrough ÷ passthrough",
            throughput["passthrough-validate"] / throughput["passthrough"],
            "ratio",
        )
        report.figure(
            "dispatcher RSS peak, backlog", max(r.rss_mib for r in runs["dispatcher"]), "MiB"
        )
        report.note(
            f"passthrough RSS peak {max(r.rss_mib for r in runs['passthrough']):.0f} MiB, "
            f"transactional {max(r.rss_mib for r in runs['passthrough-tx']):.0f} MiB"
        )
        fence_figures(report, "backlog", runs["dispatcher"][-1].metrics)
        last = runs["dispatcher"][-1]
        stage_notes(
            report,
            "backlog, last run",
            log_dir / f"dispatcher-{repeats - 1}.stages.json",
            last.seconds,
        )

        latency = await latency_run(
            b, recipients, throughput["dispatcher"] / 2, latency_seconds, warmup
        )
        report.note(
            f"50 % load: {latency.rate:,.0f} requests/s asked, {latency.achieved:,.0f}/s sent "
            f"for {latency_seconds:g} s; {latency.measured:,} latencies after a "
            f"{warmup:g} s warm-up; the dispatcher used {latency.cpu:.0%} of a core; "
            f"{latency.retries} NOT_ENOUGH_REPLICAS produce answers (per partition)"
        )
        for q in (50, 99):
            report.figure(
                f"decision latency p{q} at 50 % load (ack -> decision read)",
                percentile(latency.from_ack, q) * 1000,
                "ms",
            )
        p50, p99 = (percentile(latency.from_send, q) * 1000 for q in (50, 99))
        report.note(f"from send() instead of the ack: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        p50, p99 = (percentile(latency.to_created, q) * 1000 for q in (50, 99))
        report.note(
            f"of which ack -> the decision's send() in the dispatcher (its CreateTime, ms "
            f"resolution): p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
        p50, p99 = (percentile(latency.created_to_read, q) * 1000 for q in (50, 99))
        report.note(
            f"and that send() -> read (transaction commit, read_committed fetch): "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
        report.figure("dispatcher RSS peak, 50 % load", latency.rss_mib, "MiB")
        fence_figures(report, "50 % load", latency.metrics)
        stage_notes(
            report, "50 % load", log_dir / "dispatcher-latency.stages.json", latency.seconds
        )


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, help="default 200,000")
    parser.add_argument("--recipients", type=int, help="default 50,000")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side (median)")
    parser.add_argument("--latency-seconds", type=float, help="default 20")
    parser.add_argument(
        "--max-batch",
        type=int,
        default=MAX_BATCH,
        help="DISPATCHER_MAX_BATCH, and the passthroughs' batch (default: the service's 2000)",
    )
    parser.add_argument(
        "--producer-retry-backoff-ms",
        type=int,
        help="an experiment: every side's producer retries after this many ms, not 100 "
        "(see bench.isolated_service)",
    )
    args = parser.parse_args(argv)
    n = sized(args.requests, 200_000, args.quick)
    recipients = sized(args.recipients, 50_000, args.quick)
    latency_seconds = args.latency_seconds or (5.0 if args.quick else 20.0)
    warmup = min(2.0, latency_seconds / 5)
    report = Report(
        "bench_dispatcher",
        f"{n:,} requests over {recipients:,} recipients, {args.repeats} runs per side, "
        f"batches of {args.max_batch}, latency for {latency_seconds:g} s at 50 % of the peak"
        + (
            f", producer retry backoff {args.producer_retry_backoff_ms} ms (experiment)"
            if args.producer_retry_backoff_ms is not None
            else ""
        ),
    )
    report.header()
    asyncio.run(
        run(
            report,
            n,
            recipients,
            args.repeats,
            latency_seconds,
            warmup,
            args.max_batch,
            args.producer_retry_backoff_ms,
        )
    )
    report.write(args.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
