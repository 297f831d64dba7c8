"""The gate decides only records of partitions the group gives it: a batch fetched
before a rebalance may hold records of a partition another instance now reads."""

from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from services.dispatcher.gate import Gate
from shared.dispatch.rules import FrequencyPolicy

TOPIC = "messages.requests.v1"
UNUSED: Any = None  # the recording gate never reaches a store, a fence or a producer


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


class Recording(Gate):
    """A gate whose deciding is replaced by noting what it was given."""

    def __init__(self) -> None:
        super().__init__(
            store=Any, fence=Any, producer=Any, group_id="g", frequency=FrequencyPolicy()
        )  # type: ignore[arg-type]
        self.decided: list[list[tuple[int, int]]] = []

    async def _handle(self, batch: list[ConsumerRecord]) -> None:
        self.decided.append([(r.partition, r.offset) for r in batch])


def tps(*partitions: int) -> set[TopicPartition]:
    return {TopicPartition(TOPIC, p) for p in partitions}


async def test_without_a_group_every_record_is_decided() -> None:
    gate = Recording()
    await gate.handle([record(0, 1), record(2, 3)])
    assert gate.decided == [[(0, 1), (2, 3)]]


async def test_records_of_a_revoked_partition_are_left_to_its_new_owner() -> None:
    gate = Recording()
    await gate.on_partitions_assigned(tps(0, 1, 2))
    await gate.on_partitions_revoked(tps(1))

    await gate.handle([record(0, 5), record(1, 7), record(2, 9)])
    await gate.handle([record(1, 8)])

    assert gate.decided == [[(0, 5), (2, 9)]]


async def test_a_partition_assigned_again_is_decided_again() -> None:
    gate = Recording()
    await gate.on_partitions_assigned(tps(0))
    await gate.on_partitions_revoked(tps(0))
    await gate.on_partitions_assigned(tps(0))

    await gate.handle([record(0, 5)])

    assert gate.decided == [[(0, 5)]]
