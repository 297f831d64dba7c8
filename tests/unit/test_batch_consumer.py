"""BatchConsumer's loop: a failed batch is retried, never skipped, but only with
the records of partitions the consumer still has. A stand-in consumer drives it
(the loop's logic only; the real broker runs it in the integration tests)."""

import asyncio
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from shared.backoff import RetryPolicy
from shared.kafka.batch_consumer import BatchConsumer

TOPIC = "messages.requests.v1"


def record(partition: int, offset: int) -> ConsumerRecord:
    return ConsumerRecord(
        topic=TOPIC,
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=b"{}",
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=2,
        headers=(),
    )


class OneBatchConsumer:
    """Hands out one batch, then nothing; its assignment can be changed meanwhile."""

    def __init__(self, batch: list[ConsumerRecord], partitions: set[int]) -> None:
        self.batch: list[ConsumerRecord] | None = batch
        self.assigned = {TopicPartition(TOPIC, p) for p in partitions}
        self.committed: list[dict[TopicPartition, int]] = []

    async def getmany(self, timeout_ms: int = 0, max_records: int = 0) -> dict[Any, Any]:
        await asyncio.sleep(0.001)
        batch, self.batch = self.batch, None
        return {TopicPartition(TOPIC, 0): batch} if batch else {}

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.append(offsets)


async def run_until(loop: BatchConsumer, done: asyncio.Event) -> None:
    running = loop.start()
    try:
        async with asyncio.timeout(5):
            await done.wait()
    finally:
        await running.stop()


async def test_a_retried_batch_keeps_only_the_partitions_still_assigned() -> None:
    consumer = OneBatchConsumer([record(0, 5), record(1, 7), record(0, 6)], {0, 1})
    handled: list[list[tuple[int, int]]] = []
    done = asyncio.Event()

    async def handle(batch: list[ConsumerRecord]) -> None:
        handled.append([(r.partition, r.offset) for r in batch])
        if len(handled) == 1:
            consumer.assigned.discard(TopicPartition(TOPIC, 1))  # a rebalance meanwhile
            raise RuntimeError("database down")
        done.set()

    loop = BatchConsumer(
        consumer,  # type: ignore[arg-type]
        handle,
        name="test",
        retry=RetryPolicy(first=0.001, cap=0.001),
    )
    await run_until(loop, done)

    assert handled == [[(0, 5), (1, 7), (0, 6)], [(0, 5), (0, 6)]]
    assert consumer.committed == [{TopicPartition(TOPIC, 0): 7}]


async def test_a_batch_whose_partitions_all_went_elsewhere_is_dropped() -> None:
    consumer = OneBatchConsumer([record(1, 7)], {1})
    calls = 0

    async def handle(batch: list[ConsumerRecord]) -> None:
        nonlocal calls
        calls += 1
        consumer.assigned.clear()
        raise RuntimeError("database down")

    loop = BatchConsumer(
        consumer,  # type: ignore[arg-type]
        handle,
        name="test",
        retry=RetryPolicy(first=0.001, cap=0.001),
    )
    running = loop.start()
    await asyncio.sleep(0.2)
    assert not running.task.done()  # the loop goes on
    await running.stop()

    assert calls == 1
    assert consumer.committed == []
