"""Reads the ledgers as the tests check them: every entry from the beginning, and the
data keys the services seal with (tests/support/signing.py's master key); and runs a
ledger writer on a test's private topics."""

from typing import Any

from aiokafka.errors import ProducerFenced

from services.consent.ledger.writer import Describe, LedgerWriter
from shared.erasure.key_cache import CachedDataKeys
from shared.erasure.key_store import PostgresKeyStore
from shared.erasure.master_keys import MasterKeys
from shared.erasure.settings import ErasureSettings
from shared.kafka.batch_consumer import BatchConsumer
from shared.kafka.clients import group_consumer
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


class LedgerWriting:
    """One instance of a ledger writer (services/consent/ledger/writer.py) of `source`
    into `ledger`, running its consume loop as the consent service runs it.
    `describe`: the events' (`event_sealable` with the tests' trust) or the
    decisions' (`decision_sealable`)."""

    def __init__(
        self,
        bootstrap: str,
        pool: Any,
        erasure: ErasureSettings,
        *,
        source: str,
        ledger: str,
        group: str,
        describe: Describe,
    ) -> None:
        self.keys = erasure.data_keys(PostgresKeyStore(pool))
        self.writer = LedgerWriter(
            source=source,
            ledger=ledger,
            describe=describe,
            keys=self.keys,
            index=erasure.pseudonyms(),
            pool=pool,
            bootstrap=bootstrap,
            group_id=group,
        )
        self.consumer = group_consumer(bootstrap, group)
        self.source = source

    async def __aenter__(self) -> "LedgerWriting":
        await self.consumer.start()
        loop = BatchConsumer(
            self.consumer, self.writer.handle, name="ledger", commit=False, fatal=(ProducerFenced,)
        )
        self.consumer.subscribe([self.source], listener=loop.listener(self.writer))
        self.running = loop.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.running.stop()
        await self.writer.stop()
        await self.consumer.stop()
