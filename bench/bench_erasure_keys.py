"""Crypto-shredding's keys: what sealing personal fields will cost the projector and
the rebuild per event, beside what parsing the event costs today, and what the key
table costs on PostgreSQL (docs/erasure.md, section 9).

    python -m bench.bench_erasure_keys [--quick] [--events N] [--rounds N] [--keys N]

Pure CPU first, sides alternated in rounds (medians): parsing a grant as the
projector does (the baseline), an identifier's pseudonym (HMAC-SHA256), its key
from the cache (asked for 500 at once, as for a batch), sealing and opening a
200-byte evidence, and a grant's ledger fields all together (pseudonym, key,
subject, evidence and time zone sealed); per key, a cache miss (unwrap) and a new
key (generate and wrap); the cache's memory per key. Then, on a private database
holding --keys keys: getting or creating the keys of 500 identifiers with the
cache cold, new and known; erasing one person's two keys; the rotation's rate."""

import asyncio
import gc
import os
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Mapping

import orjson

from bench.figures import Report, base_parser, median, micros_per_call, sized
from bench.machine import rss_bytes
from bench.private import private_database
from shared.contract.event_parsing import parse_consent_event
from shared.db.pool import open_pool
from shared.erasure.data_keys import DataKey, Erased, WrappedKey
from shared.erasure.field_cipher import open_field, seal_field
from shared.erasure.key_cache import CachedDataKeys
from shared.erasure.key_store import PostgresKeyStore
from shared.erasure.master_keys import MasterKeys
from shared.erasure.rotate import rewrap_all
from shared.pseudonyms import Pseudonymizer
from shared.settings import CommonSettings
from tests.unit.domain.builders import SUBJECT, granted

BATCH = 500
EVIDENCE = {
    "registration_id": "R-1042",
    "form": "https://events.example.com/register/2026-11-27",
    "ip": "203.0.113.17",
    "user_agent": "Mozilla/5.0 (iPhone; iOS 17)",
    "checkbox": "I agree to event reminders by WhatsApp",
}
GRANT = granted(evidence=EVIDENCE, timezone="Europe/Moscow").model_dump_json().encode()
PSEUDONYMS = Pseudonymizer(os.urandom(32))


def master_keys(*ids: str) -> MasterKeys:
    listed = {key_id: os.urandom(32).hex() for key_id in ids}
    return MasterKeys({k: bytes.fromhex(v) for k, v in listed.items()}, ids[-1])


class _Unkept:
    """A store that keeps nothing: the CPU sides reach it only to fill the cache."""

    async def get_or_create(self, candidates: Mapping[str, WrappedKey]) -> dict[str, WrappedKey]:
        return dict(candidates)

    async def fetch(self, pseudonyms: Collection[str]) -> dict[str, WrappedKey | Erased]:
        return {p: Erased(p) for p in pseudonyms}

    async def delete(self, pseudonyms: Collection[str]) -> int:
        return 0


def phones(n: int, start: int = 0) -> list[str]:
    return [f"+7916{i:07d}" for i in range(start, start + n)]


async def per_item(action: Callable[[], Awaitable[object]], batches: int) -> float:
    """Microseconds per identifier of an action on a batch of BATCH."""
    started = time.perf_counter()
    for _ in range(batches):
        await action()
    return (time.perf_counter() - started) / (batches * BATCH) * 1e6


async def cpu_sides(report: Report, n: int, rounds: int) -> None:
    masters = master_keys("bench")
    keys = CachedDataKeys(_Unkept(), masters)
    subjects = phones(BATCH)
    names = [PSEUDONYMS.of(s) for s in subjects]
    await keys.for_writing(names)
    key = DataKey.generate()
    evidence = orjson.dumps(EVIDENCE)
    sealed, wrapped = seal_field(key, "e-1", "evidence", evidence), masters.wrap(key)

    async def ledger_fields() -> None:
        pseudonyms = [PSEUDONYMS.of(s) for s in subjects]
        found = await keys.for_writing(pseudonyms)
        for subject, name in zip(subjects, pseudonyms, strict=True):
            seal_field(found[name], "e-1", "subject", subject.encode())
            seal_field(found[name], "e-1", "evidence", evidence)
            seal_field(found[name], "e-1", "timezone", b"Europe/Moscow")

    sides: dict[str, Callable[[], object]] = {
        "parse a grant (the baseline)": lambda: parse_consent_event(GRANT),
        "pseudonym of an identifier (HMAC)": lambda: PSEUDONYMS.of(SUBJECT),
        "seal a 200-byte evidence": lambda: seal_field(key, "e-1", "evidence", evidence),
        "open a 200-byte evidence": lambda: open_field(key, "e-1", "evidence", sealed),
        "cache miss: unwrap a data key": lambda: masters.unwrap(wrapped),
        "new key: generate and wrap": lambda: masters.wrap(DataKey.generate()),
    }
    batched = {
        "key from the cache (500 asked at once)": lambda: keys.for_writing(names),
        "a grant's ledger fields, all together": ledger_fields,
    }
    results: dict[str, list[float]] = {name: [] for name in [*sides, *batched]}
    gc.disable()
    for _ in range(rounds):
        for name, action in sides.items():
            results[name].append(micros_per_call(action, n))
        for name, batch_action in batched.items():
            results[name].append(await per_item(batch_action, max(1, n // BATCH)))
    gc.enable()
    for name, runs in results.items():
        report.figure(name, median(runs), "µs")
    ledger = median(results["a grant's ledger fields, all together"])
    report.figure(
        "a grant's ledger fields ÷ parsing it",
        ledger / median(results["parse a grant (the baseline)"]),
        "×",
    )
    report.note(
        f"evidence: {len(evidence)} bytes, sealed: {len(sealed)} characters; ledger fields: "
        "a pseudonym, the key, subject, evidence and time zone sealed, per event"
    )


async def cache_memory(report: Report, n: int) -> None:
    """What the cache holds per key, measured as the process's resident memory (the
    ciphers' native state included, which tracemalloc would not see)."""
    keys = CachedDataKeys(_Unkept(), master_keys("bench"), max_size=n)
    names = [PSEUDONYMS.of(p) for p in phones(n)]
    gc.collect()
    before = rss_bytes(os.getpid()) or 0
    await keys.for_writing(names)
    gc.collect()
    # The pseudonyms are the cache's keys: a service holds them only there.
    per_key = ((rss_bytes(os.getpid()) or 0) - before + sum(map(sys.getsizeof, names))) / n
    report.figure(f"cache memory per key ({n:,} cached)", per_key, "bytes")
    report.figure("cache of 100,000 keys", per_key * 100_000 / 2**20, "MiB")


async def database_sides(report: Report, seeded: int, rounds: int) -> None:
    masters = master_keys("bench")
    async with private_database(CommonSettings().database_url, "erasure") as url:
        pool = await open_pool(url, max_size=2)
        try:
            store = PostgresKeyStore(pool)
            for start in range(0, seeded, 5000):
                names = [PSEUDONYMS.of(p) for p in phones(min(5000, seeded - start), start)]
                await store.get_or_create({p: masters.wrap(DataKey.generate()) for p in names})
            timings: dict[str, list[float]] = {"new": [], "known": [], "erase": []}
            for round_ in range(rounds):
                names = [PSEUDONYMS.of(p) for p in phones(BATCH, seeded + round_ * BATCH)]
                for side in ("new", "known"):  # each a process whose cache is cold
                    started = time.perf_counter()
                    await CachedDataKeys(store, masters).for_writing(names)
                    timings[side].append((time.perf_counter() - started) * 1e3)
                started = time.perf_counter()
                await CachedDataKeys(store, masters).erase(names[:2])
                timings["erase"].append((time.perf_counter() - started) * 1e3)
            rotated = MasterKeys({**masters.keys, "next": os.urandom(32)}, "next")
            started = time.perf_counter()
            rotation = await rewrap_all(store, rotated)
            rate = rotation.rewrapped / (time.perf_counter() - started)
        finally:
            await pool.close()
    report.figure("get or create 500 new identifiers' keys", median(timings["new"]), "ms/batch")
    report.figure("get 500 known identifiers' keys, cache cold", median(timings["known"]), "ms")
    report.figure("erase one person's keys (2 identifiers)", median(timings["erase"]), "ms")
    report.figure(f"rotation, {rotation.rewrapped:,} keys rewrapped", rate, "keys/s")


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, help="calls per round and side, default 20,000")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per side (median)")
    parser.add_argument("--keys", type=int, help="keys in the table, default 100,000")
    args = parser.parse_args(argv)
    n = sized(args.events, 20_000, args.quick, minimum=BATCH)
    seeded = sized(args.keys, 100_000, args.quick)
    report = Report(
        "bench_erasure_keys",
        f"{n:,} calls per round and side, {args.rounds} rounds; {seeded:,} keys in the table",
    )
    report.header()
    asyncio.run(cpu_sides(report, n, args.rounds))
    asyncio.run(cache_memory(report, seeded))
    asyncio.run(database_sides(report, seeded, args.rounds * 4))
    report.write(args.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
