"""Reads topics between given offsets without a consumer group (the rebuild
and the audit replay): read_committed, so an aborted transaction never counts,
and up to stops taken at start, so a read ends while producers go on."""

import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Literal

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared.kafka.clients import end_offsets
from shared.kafka.security import security_options

# (start, stop) per partition: the offsets from `start` up to, not including, `stop`.
Ranges = Mapping[TopicPartition, tuple[int, int]]
STALL_S = 30.0  # no progress from the broker for this long: give up, don't hang


class ReadStalledError(RuntimeError):
    """The broker returned nothing and no position moved for too long."""


def range_consumer(
    bootstrap: str, *, auto_offset_reset: Literal["earliest", "latest"] = "latest"
) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset=auto_offset_reset,
        isolation_level="read_committed",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
        **security_options(),
    )


async def whole_topic(
    consumer: AIOKafkaConsumer, topic: str, starts: Mapping[int, int] | None = None
) -> dict[TopicPartition, tuple[int, int]]:
    """Returns every partition of `topic` from its beginning (or from `starts`, never
    before the beginning nor past the end) to its end offset now. LookupError: no
    partitions."""
    ends = await end_offsets(consumer, topic)
    tps = [TopicPartition(topic, p) for p in sorted(ends)]
    beginnings = await consumer.beginning_offsets(tps)
    ranges: dict[TopicPartition, tuple[int, int]] = {}
    for tp in tps:
        stop = ends[tp.partition]
        start = max(beginnings[tp], (starts or {}).get(tp.partition, 0))
        ranges[tp] = (min(start, stop), stop)
    return ranges


async def read_ranges(
    consumer: AIOKafkaConsumer,
    ranges: Ranges,
    *,
    max_records: int,
    stall_s: float = STALL_S,
    progress: Callable[[int], object] | None = None,
) -> AsyncIterator[list[ConsumerRecord]]:
    """Yields the records of `ranges`, a fetched batch of one partition at a time (in
    offset order within a partition). `progress` is told how many more offsets each
    fetch passed (a progress bar's `update`)."""
    consumer.assign(list(ranges))
    for tp, (start, _) in ranges.items():
        consumer.seek(tp, start)
    remaining = {tp for tp, (start, stop) in ranges.items() if start < stop}
    done = dict.fromkeys(ranges, 0)
    passed = 0
    stalled_since = time.monotonic()
    while remaining:
        fetched = await consumer.getmany(*remaining, timeout_ms=500, max_records=max_records)
        for tp, records in fetched.items():
            stop = ranges[tp][1]
            within = records if not records or records[-1].offset < stop else _below(records, stop)
            if within:
                yield within
        # The position also steps over transaction markers, which are never returned.
        before = len(remaining)
        for tp in remaining:
            start, stop = ranges[tp]
            done[tp] = min(await consumer.position(tp), stop) - start
        remaining = {tp for tp in remaining if done[tp] < ranges[tp][1] - ranges[tp][0]}
        if progress is not None:
            progress(sum(done.values()) - passed)
            passed = sum(done.values())
        if fetched or len(remaining) < before:
            stalled_since = time.monotonic()
        elif time.monotonic() - stalled_since > stall_s:
            raise ReadStalledError(f"no progress from the broker for {stall_s:.0f}s")


def _below(records: list[ConsumerRecord], stop: int) -> list[ConsumerRecord]:
    return [record for record in records if record.offset < stop]
