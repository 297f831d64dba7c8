"""Batched lookup of consent states (`WHERE subject = ANY($1)`, 500 keys per query)
÷ one query per key, on the same private database, pool and keys, in the same run.

    python -m bench.bench_lookup [--quick] [--subjects N] [--keys N] [--batch N] [--repeats N]

The projection holds --subjects rows written through the projector's store (two
thirds granted, a third opted out) and a third as many numbers never seen, which are
looked up too (the dispatcher asks for every recipient, known or not): a quarter
of the keys find no row. Each side looks up the same --keys keys, one query at a
time on a pool as the dispatcher's (`shared.db.pool.open_pool`, jsonb decoded by
orjson), in two forms: the rows only, and the rows made SubjectState models as the
dispatcher makes them. A fifth side is the dispatcher's own read as it stands
(`GateStore.states_with_positions`: the same query and the tracking
positions, in one read-only REPEATABLE READ transaction). The sides alternate,
reversed every other round; medians.
"""

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from random import Random
from typing import Any

from bench.consent_seed import phones, seed_subjects
from bench.figures import Report, base_parser, median, sized, spread
from bench.private import private_database
from services.dispatcher.gate.store import GateStore
from shared.consent.state import SubjectState
from shared.db.pool import open_pool
from shared.settings import CommonSettings
from shared.topics import CONSENT_EVENTS

BATCH_QUERY = "SELECT subject, state FROM consent.subjects WHERE subject = ANY($1::text[])"
ONE_QUERY = "SELECT subject, state FROM consent.subjects WHERE subject = $1"

Side = Callable[[list[str]], Awaitable[int]]


def sides(pool: Any, batch: int) -> dict[str, Side]:
    store = GateStore(pool)

    async def batched_rows(keys: list[str]) -> int:
        return sum(
            [
                len(await pool.fetch(BATCH_QUERY, keys[i : i + batch]))
                for i in range(0, len(keys), batch)
            ]
        )

    async def batched_states(keys: list[str]) -> int:
        found = 0
        for i in range(0, len(keys), batch):
            rows = await pool.fetch(BATCH_QUERY, keys[i : i + batch])
            found += len({r["subject"]: SubjectState.model_validate(r["state"]) for r in rows})
        return found

    async def dispatcher_read(keys: list[str]) -> int:
        chunks = [keys[i : i + batch] for i in range(0, len(keys), batch)]
        return sum([len((await store.states_with_positions(c, CONSENT_EVENTS))[0]) for c in chunks])

    async def one_rows(keys: list[str]) -> int:
        return sum([await pool.fetchrow(ONE_QUERY, key) is not None for key in keys])

    async def one_states(keys: list[str]) -> int:
        found = 0
        for key in keys:
            row = await pool.fetchrow(ONE_QUERY, key)
            if row is not None:
                SubjectState.model_validate(row["state"])
                found += 1
        return found

    return {
        "batched rows": batched_rows,
        "one per key rows": one_rows,
        "batched states": batched_states,
        "one per key states": one_states,
        "batched, the dispatcher's read": dispatcher_read,
    }


async def timed(side: Side, keys: list[str]) -> tuple[float, int]:
    started = time.perf_counter()
    found = await side(keys)
    return len(keys) / (time.perf_counter() - started), found


async def run(report: Report, subjects: int, n_keys: int, batch: int, repeats: int) -> None:
    settings = CommonSettings()
    numbers = phones(subjects + subjects // 3)  # every fourth never seen: no row
    async with private_database(settings.database_url, "lookup") as url:
        started = time.perf_counter()
        kinds = await seed_subjects(url, numbers)
        rows = len(numbers) - kinds["never_seen"]
        report.note(
            f"setup: {rows:,} subjects rows, {kinds['never_seen']:,} numbers never seen, "
            f"in {time.perf_counter() - started:.1f} s"
        )
        rng = Random(5)
        # Distinct keys, as the dispatcher asks for each recipient of a batch once.
        keys = rng.sample(numbers, min(n_keys, len(numbers)))
        pool = await open_pool(url, max_size=2)
        try:
            ways = sides(pool, batch)
            for side in ways.values():  # warm the cache and the connections once
                await side(keys[: min(len(keys), batch * 2)])
            rates: dict[str, list[float]] = {name: [] for name in ways}
            found: dict[str, int] = {}
            for round_ in range(repeats):
                order = list(ways) if round_ % 2 == 0 else list(reversed(ways))
                for name in order:
                    rate, found[name] = await timed(ways[name], keys)
                    rates[name].append(rate)
                    print(f"   round {round_ + 1} {name}: {rate:,.0f} keys/s", flush=True)
        finally:
            await pool.close()
    if len(set(found.values())) != 1:
        raise RuntimeError(f"the sides found different rows: {found}")
    report.note(f"{next(iter(found.values())):,} of {len(keys):,} distinct keys found a row")
    medians = {name: median(r) for name, r in rates.items()}
    for name, runs in rates.items():
        report.figure(f"{name} (median of {repeats})", medians[name], "keys/s")
        report.note(f"{name} runs: {spread(runs)}")
    report.figure(
        "batched ÷ one per key, rows", medians["batched rows"] / medians["one per key rows"], "×"
    )
    report.figure(
        "batched ÷ one per key, SubjectState models",
        medians["batched states"] / medians["one per key states"],
        "×",
    )
    report.note(
        "SubjectState validation's share of the batched lookup: "
        f"{1 - medians['batched states'] / medians['batched rows']:.0%}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, help="subjects rows, default 100,000")
    parser.add_argument("--keys", type=int, help="keys looked up per run, default 20,000")
    parser.add_argument("--batch", type=int, default=500, help="keys per = ANY($1) query")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side (median)")
    args = parser.parse_args(argv)
    subjects = sized(args.subjects, 100_000, args.quick)
    keys = sized(args.keys, 20_000, args.quick)
    report = Report(
        "bench_lookup",
        f"{subjects:,} subjects rows, {keys:,} keys per run, {args.batch} keys per batch, "
        f"{args.repeats} runs per side",
    )
    report.header()
    asyncio.run(run(report, subjects, keys, args.batch, args.repeats))
    report.write(args.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
