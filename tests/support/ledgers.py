"""Reads the ledgers as the tests check them: every entry from the beginning, and the
data keys the services seal with (tests/support/signing.py's master key)."""

from typing import Any

from shared.erasure.key_cache import CachedDataKeys
from shared.erasure.key_store import PostgresKeyStore
from shared.erasure.master_keys import MasterKeys
from shared.kafka.range_reader import range_consumer, read_ranges, whole_topic
from shared.ledger.entries import LedgerEntry
from tests.support.signing import SIGNING_ENV

Read = list[tuple[int, int, LedgerEntry]]


async def ledger_entries(bootstrap: str, ledger: str) -> Read:
    """(partition, offset, entry) for every committed entry, in each partition's order."""
    consumer = range_consumer(bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        ranges = await whole_topic(consumer, ledger)
        found = []
        async for records in read_ranges(consumer, ranges, max_records=500):
            for r in records:
                found.append((r.partition, r.offset, LedgerEntry.model_validate_json(r.value)))
        return sorted(found, key=lambda f: (f[0], f[1]))
    finally:
        await consumer.stop()


def data_keys(pool: Any) -> CachedDataKeys:
    """The services' data keys, as a reader opens them."""
    masters = MasterKeys.parse(
        SIGNING_ENV["ERASURE_MASTER_KEYS"], SIGNING_ENV["ERASURE_ACTIVE_KEY"]
    )
    return CachedDataKeys(PostgresKeyStore(pool), masters)
