"""A consume loop over batches: handle, then commit; retry a failed batch with
backoff, never skip it. Used where FastStream hides what we need (seeking to
offsets stored beside the results, committing inside a Kafka transaction)."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from shared.backoff import RetryPolicy

log = structlog.get_logger(__name__)

Batch = list[ConsumerRecord]
BatchHandler = Callable[[Batch], Awaitable[None]]


class BatchConsumer:
    """`handle` must make the batch's effects durable and idempotent; `commit`
    defaults to committing the consumer's position after it."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        handle: BatchHandler,
        *,
        name: str,
        max_records: int = 500,
        poll_timeout_ms: int = 100,
        commit: bool = True,
        on_poll: Callable[[], Awaitable[None]] | None = None,
        on_health: Callable[[bool], None] | None = None,
        retry: RetryPolicy | None = None,
        fatal: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.consumer = consumer
        self.handle = handle
        self.name = name
        self.max_records = max_records
        self.poll_timeout_ms = poll_timeout_ms
        self.commit = commit
        self.on_poll = on_poll
        self.on_health = on_health
        # Errors that no retry can mend (a fenced transactional producer): the loop
        # ends, readiness fails, and the supervisor restarts the process.
        self.fatal = fatal
        self.retry = retry or RetryPolicy()
        self.healthy = True
        self.failures = 0
        self._stopping = asyncio.Event()
        self._in_flight = asyncio.Lock()
        # The partitions the group gave us, kept by `listener()`; None without it
        # (the consumer's own assignment is asked instead).
        self._owned: set[TopicPartition] | None = None

    def listener(self, inner: ConsumerRebalanceListener | None = None) -> "BetweenBatches":
        """The rebalance listener to subscribe with: partitions change hands only
        between batches (`BetweenBatches`); `inner` is called after."""
        return BetweenBatches(self, inner)

    def stop(self) -> None:
        self._stopping.set()

    def start(self) -> "RunningConsumer":
        """Runs the loop as a task named after it."""
        return RunningConsumer(self, asyncio.create_task(self.run(), name=self.name))

    async def run(self) -> None:
        while not self._stopping.is_set():
            fetched = await self.consumer.getmany(
                timeout_ms=self.poll_timeout_ms, max_records=self.max_records
            )
            batch = [record for records in fetched.values() for record in records]
            if batch:
                await self._until_done(batch)
            if self.on_poll is not None:
                await self._call_retrying(self.on_poll)

    async def _until_done(self, batch: Batch) -> None:
        async def attempt() -> None:
            async with self._in_flight:
                # A rebalance since the fetch (or between two attempts) may have given
                # some partitions to another consumer, which reads them from the
                # committed offsets: their records are no longer ours to handle.
                owned = self.consumer.assignment() if self._owned is None else self._owned
                mine = [r for r in batch if TopicPartition(r.topic, r.partition) in owned]
                if not mine:
                    return
                await self.handle(mine)
                if self.commit:
                    await self.consumer.commit(_next_offsets(mine))

        await self._call_retrying(attempt)

    async def _call_retrying(self, step: Callable[[], Awaitable[None]]) -> None:
        attempt = 0
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except self.fatal:
                self._set_health(False)
                log.critical("unrecoverable, stopping the consumer", consumer=self.name)
                raise
            except Exception:
                # Transient or not, skipping would lose a record: log, back off, retry.
                self._set_health(False)
                self.failures += 1
                log.exception("batch failed, retrying", consumer=self.name, attempt=attempt)
                if self._stopping.is_set():
                    raise
                await asyncio.sleep(self.retry.delay(attempt))
                attempt += 1
            else:
                self._set_health(True)
                return

    def _set_health(self, healthy: bool) -> None:
        if healthy != self.healthy and self.on_health is not None:
            self.on_health(healthy)
        self.healthy = healthy


class BetweenBatches(ConsumerRebalanceListener):  # type: ignore[misc]
    """A partition is given up only once the batch in flight is done. Otherwise the
    consumer taking it over reads it from the offsets committed before that batch
    while the batch's effects are still being made durable: a handler that tells a
    redelivery by its recorded effects (the dispatcher's decision rows) would take
    them for one and publish them a second time."""

    def __init__(self, loop: BatchConsumer, inner: ConsumerRebalanceListener | None) -> None:
        self.loop = loop
        self.inner = inner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.loop._in_flight:  # waits for the batch in flight, if any
            if self.loop._owned is not None:
                self.loop._owned -= set(revoked)
        if self.inner is not None:
            await self.inner.on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        async with self.loop._in_flight:
            self.loop._owned = (self.loop._owned or set()) | set(assigned)
        if self.inner is not None:
            await self.inner.on_partitions_assigned(assigned)


@dataclass
class RunningConsumer:
    loop: BatchConsumer
    task: "asyncio.Task[None]"

    @property
    def healthy(self) -> bool:
        """The loop still runs and its last batch did not fail."""
        return not self.task.done() and self.loop.healthy

    async def stop(self, drain_seconds: float = 0.0) -> None:
        """Ends the loop; with `drain_seconds`, a batch in progress may finish first."""
        self.loop.stop()
        if drain_seconds > 0:
            await asyncio.wait({self.task}, timeout=drain_seconds)
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def _next_offsets(batch: Batch) -> dict[TopicPartition, int]:
    offsets: dict[TopicPartition, int] = {}
    for record in batch:
        tp = TopicPartition(record.topic, record.partition)
        offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
    return offsets
