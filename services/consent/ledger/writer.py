"""Copies a source topic into its ledger, partition for partition, exactly once
(docs/erasure.md, section 3).

Each source partition has a transactional producer of its own, named after it: the
instance that takes a partition over fences the one that had it (its transaction in
flight is aborted), then reads the last committed link of the ledger partition and
chains on from it. Every batch of a partition is one Kafka transaction: its entries
and the source offsets after them. So the ledger holds each accepted record once, in
the source's order, and the chain never forks."""

import asyncio
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from services.consent import metrics
from services.consent.suppressions import suppressed_among
from shared.consent.suppression import Suppression
from shared.erasure.data_keys import DataKey
from shared.erasure.key_cache import CachedDataKeys
from shared.kafka.clients import durable_producer
from shared.kafka.range_reader import range_consumer
from shared.ledger.entries import GENESIS, LedgerEntry, Sealable, seal_entry
from shared.pseudonyms import Pseudonymizer

log = structlog.get_logger(__name__)

Describe = Callable[[ConsumerRecord], Sealable | None]

# How long a batch waits for its partition's producer and chain head.
_SETUP_SECONDS = 60.0
# Empty polls in a row (a second each) before the ledger's tail counts as unreadable.
_IDLE_POLLS = 30


class LedgerUnreadableError(RuntimeError):
    """The ledger's last entries could not be read: nothing is written until they are."""


class LedgerWriter(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        *,
        source: str,
        ledger: str,
        describe: Describe,
        keys: CachedDataKeys,
        index: Pseudonymizer,
        pool: Any,
        bootstrap: str,
        group_id: str,
    ) -> None:
        self.source, self.ledger, self.describe = source, ledger, describe
        self.keys, self.index, self.pool = keys, index, pool
        self.bootstrap, self.group_id = bootstrap, group_id
        self.producers: dict[int, AIOKafkaProducer] = {}
        self.heads: dict[int, str] = {}
        # Per partition, the source offset after the last one copied: a batch retried
        # after some of its partitions committed, or records fetched from an offset
        # committed before the last transaction completed, are not copied twice.
        self.copied: dict[int, int] = {}
        # Set once a partition's producer and head are ready: the consume loop may
        # hand its records over before this listener has finished setting it up.
        self.ready: dict[int, asyncio.Event] = {}

    async def on_partitions_revoked(self, revoked: Any) -> None:
        for tp in revoked:
            await self._release(tp.partition)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        for tp in assigned:
            if tp.partition in self.producers:
                continue
            producer = durable_producer(
                self.bootstrap, transactional_id=f"{self.group_id}-{tp.partition}"
            )
            await producer.start()
            # An empty transaction waits for the producer id: the previous owner is
            # fenced, and its transaction aborted, before the head is read.
            async with producer.transaction():
                pass
            self.producers[tp.partition] = producer
            self.heads[tp.partition], self.copied[tp.partition] = await last_link(
                self.bootstrap, self.ledger, tp.partition
            )
            self._ready(tp.partition).set()
        log.info("ledger partitions assigned", ledger=self.ledger, partitions=sorted(self.heads))

    async def stop(self) -> None:
        for partition in list(self.producers):
            await self._release(partition)

    def _ready(self, partition: int) -> asyncio.Event:
        return self.ready.setdefault(partition, asyncio.Event())

    async def _release(self, partition: int) -> None:
        self.ready.pop(partition, None)
        self.heads.pop(partition, None)
        self.copied.pop(partition, None)
        producer = self.producers.pop(partition, None)
        if producer is not None:
            await producer.stop()

    async def handle(self, batch: list[ConsumerRecord]) -> None:
        described = [(record, self.describe(record)) for record in batch]
        items = [item for _, item in described if item is not None]
        pseudonyms = {i: self.index.of(i) for item in items for i in item.identifiers}
        # An erased identifier gets no key again: whatever names it is kept empty.
        erased = await suppressed_among(self.pool, self.index, pseudonyms.keys())
        keys = await self.keys.for_writing(
            {pseudonyms[item.identifiers[0]] for item in items if not _names(item, erased)}
        )
        # Again after the keys: a key made for an identifier erased meanwhile must
        # seal nothing; an erasure committed after this read deletes whatever key
        # it finds, that one included.
        suppressed = await suppressed_among(self.pool, self.index, pseudonyms.keys())
        by_partition: dict[int, list[tuple[ConsumerRecord, Sealable | None]]] = defaultdict(list)
        for record, item in described:
            by_partition[record.partition].append((record, item))
        for partition, records in by_partition.items():
            # A failure (not set up in time) retries the batch: nothing is skipped.
            async with asyncio.timeout(_SETUP_SECONDS):
                await self._ready(partition).wait()
            await self._write(partition, records, pseudonyms, keys, suppressed)

    async def _write(
        self,
        partition: int,
        records: list[tuple[ConsumerRecord, Sealable | None]],
        pseudonyms: Mapping[str, str],
        keys: Mapping[str, DataKey],
        suppressed: Mapping[str, Suppression],
    ) -> None:
        records = [(r, item) for r, item in records if r.offset >= self.copied[partition]]
        if not records:
            return
        producer = self.producers[partition]
        head = self.heads[partition]
        born_erased = 0
        async with producer.transaction():
            for _, item in records:
                if item is None:
                    continue
                names = tuple(pseudonyms[i] for i in item.identifiers)
                key: DataKey | None = keys.get(names[0])
                if key is None or _names(item, suppressed):
                    # Its person was erased: the entry holds the place, the clear
                    # facts and the chain, never the content.
                    key, born_erased = None, born_erased + 1
                entry = seal_entry(item, names, key, head)
                head = entry.chain
                await producer.send(
                    self.ledger,
                    value=entry.model_dump_json().encode(),
                    key=names[0].encode(),
                    partition=partition,
                )
            offsets = {TopicPartition(self.source, partition): records[-1][0].offset + 1}
            await producer.send_offsets_to_transaction(offsets, self.group_id)
        self.heads[partition] = head
        self.copied[partition] = records[-1][0].offset + 1
        written = sum(1 for _, item in records if item is not None)
        metrics.LEDGER_ENTRIES.labels(self.ledger).inc(written)
        metrics.LEDGER_SKIPPED.labels(self.ledger).inc(len(records) - written)
        if born_erased:
            metrics.LEDGER_BORN_ERASED.labels(self.ledger).inc(born_erased)


def _names(item: Sealable, suppressed: Mapping[str, Suppression]) -> bool:
    return any(identifier in suppressed for identifier in item.identifiers)


async def last_link(bootstrap: str, ledger: str, partition: int) -> tuple[str, int]:
    """The chain of the last committed entry of a ledger partition (GENESIS if none)
    and the source offset after it (0 if none), read backwards in growing steps:
    transaction markers occupy offsets too."""
    consumer = range_consumer(bootstrap)
    tp = TopicPartition(ledger, partition)
    try:
        await consumer.start()
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        start = (await consumer.beginning_offsets([tp]))[tp]
        step = 16
        while end > start:
            frm = max(start, end - step)
            found = await _last_entry(consumer, tp, frm, end)
            if found is not None:
                return found.chain, found.offset + 1
            if frm == start:
                break
            end, step = frm, step * 4
        return GENESIS, 0
    finally:
        await consumer.stop()


async def _last_entry(
    consumer: AIOKafkaConsumer, tp: TopicPartition, frm: int, end: int
) -> LedgerEntry | None:
    consumer.seek(tp, frm)
    last: LedgerEntry | None = None
    idle = 0
    while await consumer.position(tp) < end:
        fetched = await consumer.getmany(tp, timeout_ms=1000)
        idle = 0 if fetched else idle + 1
        if idle > _IDLE_POLLS:
            raise LedgerUnreadableError(f"no progress reading {tp.topic}[{tp.partition}]")
        for record in fetched.get(tp, []):
            if record.offset < end and record.value is not None:
                last = LedgerEntry.model_validate_json(record.value)
    return last
