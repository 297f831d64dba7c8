"""BatchConsumer isolates poison: with healthy dependencies, a failing batch is
split until the records that fail on their own are found; those are dead-lettered
with `unprocessable`, the rest is handled in each partition's order, and nothing
is skipped without a DLQ copy. A dependency failure is retried, never blamed on
the records."""

import asyncio
from collections import defaultdict
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.backoff import RetryPolicy
from shared.kafka.batch_consumer import BatchConsumer
from shared.kafka.failures import DependencyUnavailableError, is_dependency_failure
from shared.rejection import Rejected
from tests.support.records import consumer_record

TOPIC = "consent.events.v1"
QUICK = RetryPolicy(first=0.0001, cap=0.0001)


class OneBatch:
    """Hands out one batch, then nothing; records what is committed."""

    def __init__(self, batch: list[ConsumerRecord]) -> None:
        self.batch: list[ConsumerRecord] | None = batch
        self.partitions = {TopicPartition(TOPIC, r.partition) for r in batch}
        self.committed: dict[TopicPartition, int] = {}
        self.progress = asyncio.Event()

    async def getmany(self, timeout_ms: int = 0, max_records: int = 0) -> dict[Any, Any]:
        await asyncio.sleep(0)
        batch, self.batch = self.batch, None
        return {TopicPartition(TOPIC, 0): batch} if batch else {}

    def assignment(self) -> set[TopicPartition]:
        return set(self.partitions)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            assert offset >= self.committed.get(tp, 0), "a commit went backwards"
            self.committed[tp] = offset
        self.progress.set()


class Harness:
    """A handler that fails for the poison offsets always, and for the flaky ones
    the first time they are seen; what it handled and what was dead-lettered."""

    def __init__(
        self,
        records: list[tuple[int, int]],
        poison: set[int] | None = None,
        flaky: set[int] | None = None,
        healthy: bool = True,
        error: Exception | None = None,
    ) -> None:
        self.records = records
        self.consumer = OneBatch([consumer_record(TOPIC, p, o) for p, o in records])
        self.poison = poison or set()
        self.flaky = set(flaky or ())
        self.healthy = healthy
        self.error = error or ValueError("Maximum serialization depth exceeded")
        self.handled: list[tuple[int, int]] = []
        self.dead: list[tuple[int, Rejected]] = []
        self.calls = 0

    async def handle(self, batch: list[ConsumerRecord]) -> None:
        self.calls += 1
        offsets = {r.offset for r in batch}
        if offsets & self.poison:
            raise self.error
        if offsets & self.flaky:
            self.flaky -= offsets
            raise RuntimeError("a passing hiccup")
        self.handled.extend((r.partition, r.offset) for r in batch)

    async def dead_letter(self, record: ConsumerRecord, rejected: Rejected) -> None:
        self.dead.append((record.offset, rejected))

    async def probe(self) -> bool:
        return self.healthy

    async def run(self, seconds: float = 5.0, **options: Any) -> BatchConsumer:
        loop = BatchConsumer(
            self.consumer,  # type: ignore[arg-type]
            self.handle,
            name="test",
            retry=QUICK,
            dead_letter=self.dead_letter,
            probe=self.probe,
            **options,
        )
        running = loop.start()
        try:
            async with asyncio.timeout(seconds):
                while not self._settled():
                    self.consumer.progress.clear()
                    await self.consumer.progress.wait()
        except TimeoutError:
            pass
        await running.stop()
        return loop

    def _settled(self) -> bool:
        """Every partition committed past its last record."""
        ends: dict[int, int] = defaultdict(int)
        for partition, offset in self.records:
            ends[partition] = max(ends[partition], offset + 1)
        committed = {tp.partition: o for tp, o in self.consumer.committed.items()}
        return all(committed.get(p, 0) >= end for p, end in ends.items())


def harness(records: list[tuple[int, int]], **kwargs: Any) -> Harness:
    return Harness(records, **kwargs)


def spread(n: int, partitions: int = 3) -> list[tuple[int, int]]:
    """n records over the partitions, interleaved as getmany hands them out."""
    return [(i % partitions, 100 + i) for i in range(n)]


async def test_a_poison_record_is_dead_lettered_and_the_rest_handled_in_order() -> None:
    records = spread(16)
    h = harness(records, poison={107})

    await h.run()

    assert [offset for offset, _ in h.dead] == [107]
    reason = h.dead[0][1]
    assert reason.reason == "unprocessable"
    assert reason.detail == "ValueError: Maximum serialization depth exceeded"
    assert sorted(h.handled) == sorted(r for r in records if r[1] != 107)
    for partition in range(3):
        mine = [o for p, o in h.handled if p == partition]
        assert mine == sorted(mine), "a partition's records were handled out of order"
    assert h.consumer.committed == {
        TopicPartition(TOPIC, p): max(o for q, o in records if q == p) + 1 for p in range(3)
    }


async def test_two_poison_records_in_one_batch_are_both_found() -> None:
    h = harness(spread(9), poison={100, 108})

    await h.run()

    assert sorted(offset for offset, _ in h.dead) == [100, 108]
    assert len(h.handled) == 7


async def test_a_record_that_fails_once_and_then_succeeds_is_not_poison() -> None:
    h = harness(spread(1), flaky={100})

    await h.run()

    assert h.dead == []
    assert h.handled == [(0, 100)]


async def test_a_single_poison_record_is_tried_three_times_before_it_is_dead_lettered() -> None:
    h = harness(spread(1), poison={100})

    await h.run()

    assert [offset for offset, _ in h.dead] == [100]
    assert h.calls == 3


async def test_a_bug_that_fails_every_record_dead_letters_a_few_then_fails_closed() -> None:
    records = spread(12)
    h = harness(records, poison={o for _, o in records})

    loop = await h.run(seconds=1.0)

    assert len(h.dead) == 5  # max_poison_streak, then the loop blames itself
    assert not loop.healthy
    h.poison = set()  # the fix is deployed: the rest goes through, nothing skipped
    h.consumer.batch = [consumer_record(TOPIC, p, o) for p, o in records]
    await h.run()
    assert {o for _, o in h.handled} | {o for o, _ in h.dead} == {o for _, o in records}


async def test_a_run_of_hostile_records_slows_the_loop_but_does_not_stop_it() -> None:
    records = spread(9, partitions=1)
    h = harness(records, poison={o for _, o in records[:7]})

    await h.run(poison_cooldown=0.05)

    assert sorted(o for o, _ in h.dead) == [o for _, o in records[:7]]
    assert [o for _, o in h.handled] == [o for _, o in records[7:]]


async def test_with_a_dependency_down_nothing_is_dead_lettered_or_skipped() -> None:
    h = harness(spread(4), poison={101}, healthy=False)

    loop = await h.run(seconds=0.3)

    assert h.dead == []
    assert h.handled == []  # the whole batch waits: no split without healthy dependencies
    assert h.consumer.committed == {}
    assert not loop.healthy


async def test_a_known_dependency_error_is_retried_even_when_the_probe_answers() -> None:
    h = harness(spread(4), poison={101}, error=ConnectionResetError("server closed"))

    await h.run(seconds=0.3)

    assert h.dead == []
    assert h.consumer.committed == {}


async def test_without_a_dead_letter_every_failure_is_retried() -> None:
    h = harness(spread(2), poison={100})
    loop = BatchConsumer(
        h.consumer,  # type: ignore[arg-type]
        h.handle,
        name="test",
        retry=QUICK,
    )
    running = loop.start()
    await asyncio.sleep(0.2)
    await running.stop()

    assert h.handled == [] and h.consumer.committed == {}


def test_dependency_failures_are_told_from_record_failures() -> None:
    import asyncpg
    from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

    assert is_dependency_failure(DependencyUnavailableError("projection behind"))
    assert is_dependency_failure(ConnectionRefusedError())
    assert is_dependency_failure(TimeoutError())
    assert is_dependency_failure(asyncpg.exceptions.AdminShutdownError("shutdown"))
    assert is_dependency_failure(asyncpg.exceptions.DeadlockDetectedError("deadlock"))
    assert is_dependency_failure(KafkaConnectionError())
    assert not is_dependency_failure(MessageSizeTooLargeError())
    assert not is_dependency_failure(ValueError("depth"))
    assert not is_dependency_failure(RecursionError())
    assert not is_dependency_failure(asyncpg.exceptions.UntranslatableCharacterError("\\u0000"))


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=40),
    data=st.data(),
)
async def test_exactly_the_poison_records_are_dead_lettered(size: int, data: st.DataObject) -> None:
    records = spread(size)
    offsets = [o for _, o in records]
    poison = data.draw(st.sets(st.sampled_from(offsets), max_size=4))
    flaky = data.draw(st.sets(st.sampled_from(offsets), max_size=4)) - poison
    h = harness(records, poison=poison, flaky=flaky)

    await h.run()

    assert {offset for offset, _ in h.dead} == poison
    assert len(h.dead) == len(poison)
    assert {o for _, o in h.handled} == set(offsets) - poison
    for partition in range(3):
        first_seen: list[int] = []
        for p, o in h.handled:
            if p == partition and o not in first_seen:
                first_seen.append(o)
        assert first_seen == sorted(first_seen)
