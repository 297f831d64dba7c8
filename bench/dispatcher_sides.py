"""The sides the dispatcher benchmark times on the same backlog, each a fresh process
with a fresh group: the real dispatcher, and the passthroughs it is compared with."""

from collections import Counter
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench.dispatcher_setup import Topics, forget_decisions
from bench.kafka_io import Arrivals
from bench.machine import CpuShare, RssSampler
from bench.private import free_port, position_group
from bench.processes import BenchProcess, py_spy, scrape

MAX_BATCH = 2000  # the dispatcher's default DISPATCHER_MAX_BATCH; the passthrough's too


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
        "services.dispatcher.gate.handler:Gate",
        "services.dispatcher.gate.store:GateStore",
        "services.dispatcher.gate.fence:Fence",
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
        "DISPATCHER_ADMIN_PORT": str(free_port()),
        "DISPATCHER_SENDER_ENABLED": "false",
        "DISPATCHER_MAX_BATCH": str(b.max_batch),
        "KAFKA_TOPIC_PREFIX": b.topics.prefix,
        # The figures must not depend on the hour the bench runs at (at night the
        # default window would defer every reminder): the whole day is open.
        "DISPATCHER_QUIET_HOURS": '{"default": "00:00-00:00"}',
    }
    if b.retry_backoff_ms is not None:
        env["BENCH_RETRY_BACKOFF_MS"] = str(b.retry_backoff_ms)
    return BenchProcess(label, ["bench.isolated_service", "dispatcher"], env, b.log_dir)


async def dispatcher_run(
    b: Bench, round_: int, starts: dict[int, int], n: int, instances: int = 1
) -> SideRun:
    """`instances` dispatchers in one group (one per partition at most): CPU is their
    sum, RSS the largest; the metrics and the profile are the first one's."""
    await forget_decisions(b.database_url)
    label = f"dispatcher-{round_}" if instances == 1 else f"dispatcher-x{instances}-{round_}"
    group = b.group(label)
    await position_group(b.bootstrap, group, b.topics.requests, starts)
    ports = [free_port() for _ in range(instances)]
    names = [label] if instances == 1 else [f"{label}-{i}" for i in range(instances)]
    async with Arrivals(b.bootstrap, b.topics.decisions, ids=instances > 1) as decisions:
        decisions.keep_values = round_ == 0 and instances == 1
        with ExitStack() as started:
            processes = [
                started.enter_context(dispatcher_process(b, name, group, port))
                for name, port in zip(names, ports, strict=True)
            ]
            started.enter_context(py_spy(processes[0].pid, b.log_dir / f"{label}.pyspy.txt"))
            async with AsyncExitStack() as sampled:
                rss = [await sampled.enter_async_context(RssSampler(p.pid)) for p in processes]
                cpu = [await sampled.enter_async_context(CpuShare(p.pid)) for p in processes]

                def alive() -> None:
                    for process in processes:
                        process.alive()

                await decisions.wait_for(n, timeout=max(180.0, n / 200), alive=alive)
            metrics = await scrape(f"http://127.0.0.1:{ports[0]}")
    if instances > 1 and len(decisions.arrived) != decisions.count:
        # Instances hand partitions over in a rebalance: never a decision twice.
        raise RuntimeError(
            f"{decisions.count - len(decisions.arrived)} decisions published twice by "
            f"{instances} dispatchers"
        )
    outcomes: Counter[str] = Counter()
    for value in decisions.values:
        body = orjson.loads(value)
        outcomes[f"{body['decision']}/{body['reason']}"] += 1
    return SideRun(
        decisions.throughput(),
        decisions.last_at - decisions.first_at,
        max(r.peak_mib for r in rss),
        sum(c.share for c in cpu),
        sum(retried_produces(p) for p in processes),
        metrics,
        outcomes,
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
