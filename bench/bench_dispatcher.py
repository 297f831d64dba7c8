"""End-to-end dispatcher throughput ÷ a bare consume -> produce passthrough, on the
same broker, topics and batches, in the same run; decision latency at 50 % of the
measured peak; the dispatcher's RSS; the fence's wait.

    python -m bench.bench_dispatcher [--quick] [--requests N] [--recipients N] [--repeats N]

The dispatcher is the real one, `services.dispatcher.main`, in a process of its own
(`bench.isolated_service`, with KAFKA_TOPIC_PREFIX=bench.<run>.: the contract's
topics are the run's private copies, so nothing running beside the benchmark sees
its records, nor it theirs), deciding against a private, migrated database whose
consent projection holds the recipients with mixed consent (half granted, a
quarter opted out, a quarter never seen).

Throughput is measured on a backlog: the requests are produced once, then each
side (the dispatcher, two dispatchers in one group, the plain passthrough, the
transactional passthrough, and the validating passthrough: a floor,
`bench.passthrough --validate`) is started as fresh processes with a fresh group
positioned at the backlog's start,
and timed from the first output record arriving on its output topic to the last
(read_committed). Sides alternate, in reversed order every other round; medians.
Before every dispatcher run its schema is reset to the same state (the run's
decisions gone, 200,000 earlier ones kept, analysed: see
`bench.dispatcher_setup.forget_decisions`), so each run decides the same requests
from the same state.
"""

import asyncio
import sys
from contextlib import AsyncExitStack

from bench.dispatcher_figures import backlog_figures, latency_figures
from bench.dispatcher_latency import latency_run
from bench.dispatcher_setup import Topics, produce_backlog, seed_recipients
from bench.dispatcher_sides import MAX_BATCH, Bench, SideRun, dispatcher_run, passthrough_run
from bench.figures import Report, base_parser, median, sized
from bench.private import delete_groups, private_database, private_topics, run_id
from bench.processes import ROOT
from shared.settings import CommonSettings


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
        recipients = await seed_recipients(report, url, recipients_n, log_dir)
        starts = await produce_backlog(report, bootstrap, topics.requests, recipients, n, rid)

        sides = (
            "dispatcher",
            "dispatcher-x2",
            "passthrough",
            "passthrough-tx",
            "passthrough-validate",
        )
        runs: dict[str, list[SideRun]] = {side: [] for side in sides}
        for round_ in range(repeats):
            order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
            for side in order:
                if side.startswith("dispatcher"):
                    instances = 2 if side == "dispatcher-x2" else 1
                    result = await dispatcher_run(b, round_, starts, n, instances)
                else:
                    result = await passthrough_run(b, round_, starts, n, side)
                runs[side].append(result)
                print(f"   round {round_ + 1} {side}: {result.throughput:,.0f}/s", flush=True)

        throughput = {side: median([r.throughput for r in rs]) for side, rs in runs.items()}
        backlog_figures(report, runs, throughput, repeats, log_dir)

        latency = await latency_run(
            b, recipients, throughput["dispatcher"] / 2, latency_seconds, warmup
        )
        latency_figures(report, latency, latency_seconds, warmup, log_dir)


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
