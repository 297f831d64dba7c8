"""BatchConsumer's loop: a failed batch is retried, never skipped, but only with
the records of partitions the consumer still has; with its rebalance listener, a
batch fetched before a revocation leaves the revoked partitions' records to their
new owner. A stand-in consumer drives it (the loop's logic only; the real broker
runs it in the integration tests, tests/integration/test_gate.py)."""

import asyncio
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from shared.backoff import RetryPolicy
from shared.kafka.batch_consumer import BatchConsumer
from tests.support.records import consumer_record

TOPIC = "messages.requests.v1"


def record(partition: int, offset: int) -> ConsumerRecord:
    return consumer_record(TOPIC, partition, offset)


def tps(*partitions: int) -> set[TopicPartition]:
    return {TopicPartition(TOPIC, p) for p in partitions}


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


async def handled_after(
    consumer: OneBatchConsumer, rebalance: list[tuple[str, set[TopicPartition]]]
) -> list[list[tuple[int, int]]]:
    """What the loop hands on of its one batch, after the listener saw `rebalance`."""
    handled: list[list[tuple[int, int]]] = []
    done = asyncio.Event()

    async def handle(batch: list[ConsumerRecord]) -> None:
        handled.append([(r.partition, r.offset) for r in batch])
        done.set()

    loop = BatchConsumer(consumer, handle, name="test")  # type: ignore[arg-type]
    listener = loop.listener()
    for event, partitions in rebalance:
        if event == "assigned":
            await listener.on_partitions_assigned(partitions)
        else:
            await listener.on_partitions_revoked(partitions)
    running = loop.start()
    await asyncio.sleep(0.2)
    await running.stop()
    return handled


async def test_records_of_a_revoked_partition_are_left_to_its_new_owner() -> None:
    # The consumer still lists partition 1: the listener's word counts.
    consumer = OneBatchConsumer([record(0, 5), record(1, 7), record(2, 9)], {0, 1, 2})

    handled = await handled_after(consumer, [("assigned", tps(0, 1, 2)), ("revoked", tps(1))])

    assert handled == [[(0, 5), (2, 9)]]


async def test_a_partition_assigned_again_is_handled_again() -> None:
    consumer = OneBatchConsumer([record(0, 5)], {0})
    rebalance = [("assigned", tps(0)), ("revoked", tps(0)), ("assigned", tps(0))]

    assert await handled_after(consumer, rebalance) == [[(0, 5)]]


async def test_a_revocation_waits_for_the_batch_in_flight() -> None:
    consumer = OneBatchConsumer([record(0, 5)], {0})
    release = asyncio.Event()
    steps: list[str] = []

    async def handle(batch: list[ConsumerRecord]) -> None:
        steps.append("batch started")
        await release.wait()
        steps.append("batch done")

    loop = BatchConsumer(consumer, handle, name="test")  # type: ignore[arg-type]
    listener = loop.listener()
    await listener.on_partitions_assigned(tps(0))
    running = loop.start()
    await asyncio.sleep(0.05)
    revoking = asyncio.create_task(listener.on_partitions_revoked(tps(0)))
    await asyncio.sleep(0.05)
    steps.append("revocation waiting" if not revoking.done() else "revoked at once")
    release.set()
    await revoking
    steps.append("revoked")
    await running.stop()

    assert steps == ["batch started", "revocation waiting", "batch done", "revoked"]
