"""Two weeks of the dispatcher's decisions, compressed: per simulated day, the size of
dispatcher.decisions and the time of the gate's idempotency lookup and frequency
count, with the day partitions maintained at every simulated midnight.

    python -m bench.bench_retention [--quick] [--days N] [--rows-per-day N]
        [--horizon N] [--recipients N] [--batch N] [--samples N]

A private, migrated database. Each simulated day starts with the maintenance the
dispatcher runs every hour (`dispatcher.maintain_partitions_as_of` at that midnight:
--horizon days kept, 3 made ahead), then writes the day's --rows-per-day decisions
with COPY (seven in ten dispatched, with the Cloud API body), decided_at spread
over the day, and ANALYZEs that day's partition, as autovacuum would during a real
day. Then, on a pool opened as the dispatcher's, the gate's own queries
(`GateStore.decisions`, `GateStore.dispatched_since`) run --samples times each: a
lookup of --batch request_ids (half decided within the horizon, half new) and a
count of --batch recipients' dispatches in the last 24 hours; then `GateStore.record`
of 10 batches of --batch new decisions (its request_id locks, its `NOT EXISTS`).

The figures should be flat once the horizon is reached: the table then holds the
same number of days, and a lookup probes the same number of partitions. Last, the
rows kept on the last day go into a second database migrated without the day
partitions (migrations 001 to 004), and the same calls run there: what the
partitions cost.
"""

import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

import asyncpg

from bench.consent_seed import phones
from bench.figures import Report, base_parser, median, percentile, sized
from bench.private import private_database
from bench.retention_load import (
    DAY,
    FULL_DAY,
    SimulatedDays,
    copy_day,
    migrations_before_day_partitions,
    new_decisions,
)
from services.dispatcher.gate.store import POOL_SETTINGS, GateStore
from services.dispatcher.retention.maintenance import AHEAD_DAYS
from shared.db.pool import open_pool
from shared.settings import CommonSettings

_MAINTAIN = "SELECT action FROM dispatcher.maintain_partitions_as_of($1, $2, $3)"
_SIZE = """
SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::bigint AS bytes, count(*) AS partitions
FROM pg_inherits WHERE inhparent = 'dispatcher.decisions'::regclass
"""
# Batches of new decisions recorded a day (they stay: 2.5 % more rows by default).
RECORDS = 10
_HEADER = (
    "day | rows kept | partitions | size MiB | maintenance ms (dropped) | "
    "lookup p50 / p99 ms | count p50 / p99 ms | record p50 ms"
)


async def _millis(calls: list[Callable[[], Awaitable[object]]]) -> list[float]:
    times = []
    for call in calls:
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def _lookup_ids(days: SimulatedDays, day: int, horizon: int, n: int, rng: Random) -> list[str]:
    """Half decided within the horizon (a redelivery), half never seen (new requests)."""
    first = max(0, day - horizon + 1)
    known = [
        days.request_id(rng.randint(first, day), rng.randrange(days.rows_per_day))
        for _ in range(n // 2)
    ]
    return known + [f"new-{day}-{rng.random()}" for _ in range(n - len(known))]


async def measure(
    store: GateStore, days: SimulatedDays, day: int, horizon: int, batch: int, samples: int
) -> dict[str, float]:
    """The gate's lookup, count and record at the end of simulated day `day`, in
    milliseconds."""
    rng = Random(day)
    since = days.midnight(day) + DAY - timedelta(hours=24)
    lookups = [_lookup_ids(days, day, horizon, batch, rng) for _ in range(samples)]
    recipients = [rng.sample(days.recipients, batch) for _ in range(samples)]
    looked = await _millis([lambda ids=ids: store.decisions(ids) for ids in lookups])
    counted = await _millis([lambda r=r: store.dispatched_since(r, since) for r in recipients])
    batches = new_decisions(days, day, batch, RECORDS)
    recorded = await _millis([lambda rows=rows: store.record(rows) for rows in batches])
    return {
        "lookup_p50": median(looked),
        "lookup_p99": percentile(looked, 99),
        "count_p50": median(counted),
        "count_p99": percentile(counted, 99),
        "record_p50": median(recorded),
    }


async def simulate_day(owner: Any, days: SimulatedDays, day: int, horizon: int) -> dict[str, float]:
    """Midnight's maintenance, the day's decisions, the table as the day ends."""
    midnight = days.midnight(day)
    started = time.perf_counter()
    actions = [r["action"] for r in await owner.fetch(_MAINTAIN, midnight, horizon, AHEAD_DAYS)]
    maintained = (time.perf_counter() - started) * 1000
    await copy_day(owner, days, day)
    await owner.execute(f"ANALYZE dispatcher.decisions_p{midnight:%Y%m%d}")
    size = await owner.fetchrow(_SIZE)
    return {
        "day": day,
        "rows": await owner.fetchval("SELECT count(*) FROM dispatcher.decisions"),
        "partitions": size["partitions"],
        "mib": size["bytes"] / 2**20,
        "maintenance_ms": maintained,
        "dropped": actions.count("dropped"),
    }


async def simulate(
    days: SimulatedDays, n_days: int, horizon: int, batch: int, samples: int, url: str
) -> list[dict[str, float]]:
    owner = await asyncpg.connect(url)
    pool = await open_pool(url, max_size=2, server_settings=POOL_SETTINGS)  # as the dispatcher's
    results = []
    print(f"   {_HEADER}", flush=True)
    try:
        for day in range(n_days):
            result = await simulate_day(owner, days, day, horizon)
            result |= await measure(GateStore(pool), days, day, horizon, batch, samples)
            results.append(result)
            print(f"   {_line(result)}", flush=True)
    finally:
        await pool.close()
        await owner.close()
    return results


def _line(r: dict[str, float]) -> str:
    return (
        f"{r['day']:>3.0f} | {r['rows']:>9,.0f} | {r['partitions']:>10.0f} | "
        f"{r['mib']:>8,.1f} | {r['maintenance_ms']:>13,.1f} ({r['dropped']:.0f})"
        f"{'':>10} | {r['lookup_p50']:>8.2f} / {r['lookup_p99']:>6.2f} | "
        f"{r['count_p50']:>7.2f} / {r['count_p99']:>6.2f} | {r['record_p50']:>13.2f}"
    )


def summarise(
    report: Report, results: list[dict[str, float]], horizon: int, flat: dict[str, float]
) -> None:
    full, last = results[min(horizon, len(results) - 1)], results[-1]
    report.note(
        f"the horizon is reached on day {full['day']:.0f}; the last day is {last['day']:.0f}"
    )
    report.figure("table size, last day", last["mib"], "MiB")
    report.figure(
        "table size, last day ÷ day the horizon is reached", last["mib"] / full["mib"], "ratio"
    )
    # One day's median is noisy on a shared machine: the days the horizon holds, together.
    held = median([r["lookup_p50"] for r in results[int(full["day"]) :]])
    report.figure("idempotency lookup p50, last day", last["lookup_p50"], "ms")
    report.figure(f"idempotency lookup p50, median of days {full['day']:.0f} on", held, "ms")
    report.figure(
        "idempotency lookup p50, days before the horizon ÷ days past it",
        median([r["lookup_p50"] for r in results[: int(full["day"])]]) / held,
        "ratio",
    )
    report.figure("idempotency lookup p99, last day", last["lookup_p99"], "ms")
    report.figure("frequency count p50, last day", last["count_p50"], "ms")
    report.figure("frequency count p99, last day", last["count_p99"], "ms")
    report.figure("maintenance at midnight, last day", last["maintenance_ms"], "ms")
    # What the day partitions cost: the same rows, one table keyed by request_id.
    report.figure("idempotency lookup p50, same rows unpartitioned", flat["lookup_p50"], "ms")
    report.figure(
        "idempotency lookup p50, partitioned ÷ unpartitioned",
        last["lookup_p50"] / flat["lookup_p50"],
        "ratio",
    )
    report.figure("frequency count p50, same rows unpartitioned", flat["count_p50"], "ms")
    report.figure("record of a batch p50, last day", last["record_p50"], "ms")
    report.figure("record of a batch p50, same rows unpartitioned", flat["record_p50"], "ms")


async def unpartitioned(
    days: SimulatedDays, n_days: int, horizon: int, batch: int, samples: int
) -> dict[str, float]:
    """The rows kept on the last day in dispatcher.decisions as migrations 001 to 004 made
    it, one table keyed by request_id: the same calls, before the day partitions."""
    last = n_days - 1
    with tempfile.TemporaryDirectory(prefix="bench-retention-") as scratch:
        before = migrations_before_day_partitions(Path(scratch))
        async with private_database(CommonSettings().database_url, "flat", before) as url:
            owner = await asyncpg.connect(url)
            try:
                for day in range(max(0, last - horizon), last + 1):
                    await copy_day(owner, days, day)
                await owner.execute("ANALYZE dispatcher.decisions")
            finally:
                await owner.close()
            pool = await open_pool(url, max_size=2, server_settings=POOL_SETTINGS)
            try:
                return await measure(GateStore(pool), days, last, horizon, batch, samples)
            finally:
                await pool.close()


async def run(
    report: Report,
    n_days: int,
    rows_per_day: int,
    horizon: int,
    recipients: int,
    batch: int,
    samples: int,
) -> None:
    settings = CommonSettings()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    days = SimulatedDays(today, rows_per_day, phones(recipients))
    async with private_database(settings.database_url, "retention") as url:
        results = await simulate(days, n_days, horizon, batch, samples, url)
    flat = await unpartitioned(days, n_days, horizon, batch, samples)
    summarise(report, results, horizon, flat)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14, help="simulated days, default 14")
    parser.add_argument("--rows-per-day", type=int, help="decisions a day, default 200,000")
    parser.add_argument("--horizon", type=int, default=7, help="DISPATCHER_HORIZON_DAYS")
    parser.add_argument("--recipients", type=int, help="distinct recipients, default 50,000")
    parser.add_argument("--batch", type=int, default=500, help="keys per lookup and count")
    parser.add_argument("--samples", type=int, default=200, help="timed calls of each a day")
    args = parser.parse_args(argv)
    rows_per_day = sized(args.rows_per_day, 200_000, args.quick)
    recipients = sized(args.recipients, 50_000, args.quick)
    report = Report(
        "bench_retention",
        f"{args.days} simulated days of {rows_per_day:,} decisions "
        f"(1/{FULL_DAY / rows_per_day:,.0f} of 86.4 million, 1,000 a second), "
        f"horizon {args.horizon} days, {recipients:,} recipients, "
        f"{args.samples} lookups and counts of {args.batch} keys a day",
    )
    report.header()
    asyncio.run(
        run(report, args.days, rows_per_day, args.horizon, recipients, args.batch, args.samples)
    )
    report.write(args.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
