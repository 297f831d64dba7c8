"""read_ranges against a fake consumer: the records between the offsets given,
the transaction markers stepped over, the progress told and a stall refused."""

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition

from shared.kafka.range_reader import ReadStalledError, read_ranges

TP0, TP1 = TopicPartition("t", 0), TopicPartition("t", 1)


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int


class FakeConsumer:
    """Each partition holds the records at `offsets` (the gaps are transaction
    markers), and its log ends at `ends`; a fetch returns up to `max_records`."""

    def __init__(
        self, offsets: Mapping[TopicPartition, list[int]], ends: Mapping[TopicPartition, int]
    ):
        self.offsets, self.ends = offsets, ends
        self.positions: dict[TopicPartition, int] = {}

    def assign(self, tps: list[TopicPartition]) -> None:
        self.positions = dict.fromkeys(tps, 0)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def getmany(self, *tps: TopicPartition, timeout_ms: int, max_records: int) -> Any:
        fetched = {}
        for tp in tps:
            here = [o for o in self.offsets[tp] if o >= self.positions[tp]][:max_records]
            if here:
                fetched[tp] = [Record(tp.topic, tp.partition, o) for o in here]
                self.positions[tp] = here[-1] + 1
            else:
                self.positions[tp] = max(self.positions[tp], self.ends[tp])
        return fetched


async def read_all(consumer: Any, ranges: Any, **kwargs: Any) -> list[tuple[int, int]]:
    return [
        (r.partition, r.offset)
        async for batch in read_ranges(consumer, ranges, **kwargs)
        for r in batch
    ]


def test_the_records_from_each_start_up_to_its_stop_are_read_across_markers() -> None:
    consumer = FakeConsumer({TP0: [0, 1, 3, 4, 6], TP1: [0, 1]}, {TP0: 8, TP1: 2})
    told: list[int] = []

    read = asyncio.run(
        read_all(consumer, {TP0: (1, 5), TP1: (0, 2)}, max_records=2, progress=told.append)
    )

    assert sorted(read) == [(0, 1), (0, 3), (0, 4), (1, 0), (1, 1)]
    assert sum(told) == 4 + 2  # every offset of both ranges, markers too


def test_an_empty_range_is_not_read() -> None:
    consumer = FakeConsumer({TP0: [0, 1]}, {TP0: 2})

    assert asyncio.run(read_all(consumer, {TP0: (2, 2)}, max_records=10)) == []


def test_a_read_with_no_progress_for_too_long_is_refused() -> None:
    class Stuck(FakeConsumer):
        async def getmany(self, *tps: TopicPartition, timeout_ms: int, max_records: int) -> Any:
            return {}

    consumer = Stuck({TP0: [0]}, {TP0: 1})

    with pytest.raises(ReadStalledError):
        asyncio.run(read_all(consumer, {TP0: (0, 1)}, max_records=10, stall_s=0.0))
