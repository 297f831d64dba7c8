"""Runs the command `python -m services.consent.rebuild` (see the package's docstring)."""

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from aiokafka.errors import KafkaError
from asyncpg import PostgresError

from services.consent.rebuild.read_ledger import rebuild_states_from_ledger
from services.consent.rebuild.read_log import rebuild_states
from services.consent.rebuild.read_table import rebuild_states_from_table
from services.consent.rebuild.rebuilt import RebuildRefusedError, Source
from services.consent.rebuild.verify import compare_with_table, verify_rebuilt
from services.consent.rebuild.write import write_rebuilt
from services.consent.settings import ConsentSettings
from services.consent.store import tracking_positions
from services.consent.suppressions import suppression_list
from shared.db.pool import open_pool
from shared.erasure.key_store import PostgresKeyStore
from shared.pseudonyms import Pseudonymizer
from shared.structured_logging import configure_logging
from shared.topics import CONSENT_EVENTS


async def run(
    settings: ConsentSettings,
    *,
    source: Source = "log",
    verify: bool = False,
    progress: bool = False,
    timeout: float = 60.0,
    topic: str = CONSENT_EVENTS,
) -> int:
    """Runs the command: prints a summary to stdout and returns the exit status."""
    pool: Any = None
    try:
        # The owner's DATABASE_URL, not the projector's role: the rebuild locks
        # consent.events in EXCLUSIVE mode and deletes the subjects that no longer
        # fold, which no service role may do (docs/security.md).
        pool = await open_pool(settings.database_url, max_size=2)
        index = settings.erasure_index()
        if source == "table" and verify:
            return await _verify_table(pool, topic, progress, index)
        if source == "ledger":
            tracked_before = await tracking_positions(pool, topic)
            erasure = settings.erasure()
            rebuilt = await rebuild_states_from_ledger(
                settings.kafka_bootstrap_servers,
                erasure.data_keys(PostgresKeyStore(pool)),
                writer_group=settings.ledger_group_id,
                topic=topic,
                suppression=await suppression_list(pool, index),
                progress=progress,
            )
        elif source == "table":
            async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
                rebuilt = await rebuild_states_from_table(
                    conn, topic=topic, progress=progress, index=index
                )
            tracked_before = rebuilt.positions
        else:
            tracked_before = await tracking_positions(pool, topic)
            # Read before the log: an erasure carried out meanwhile leaves records
            # the rebuild would write back; the projector drops them when it meets them.
            suppression = await suppression_list(pool, index)
            rebuilt = await rebuild_states(
                settings.kafka_bootstrap_servers,
                trust=settings.trust(),
                topic=topic,
                keep_rejects_from=None if verify else tracked_before,
                progress=progress,
                suppression=suppression,
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


async def _verify_table(pool: Any, topic: str, progress: bool, index: Pseudonymizer) -> int:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        rebuilt = await rebuild_states_from_table(conn, topic=topic, progress=progress, index=index)
        print(rebuilt.summary())
        outcome = await compare_with_table(conn, rebuilt)
    print(outcome.report())
    return 0 if outcome.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.consent.rebuild",
        description="Rebuild consent.subjects from the log (or consent.events), or verify it.",
    )
    parser.add_argument("--from", dest="source", choices=("log", "table", "ledger"), default="log")
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
