"""The one consume loop of every consumer handles a batch, then commits.

A failed batch is never skipped. When a dependency is down it is retried with
backoff, failing closed. When the dependencies are healthy and the batch still
fails, the batch is to blame: it is split in halves, each handled on its own and
in order, until the records that fail on their own are found; each of those is
dead-lettered (`error.reason=unprocessable`) and the rest goes on. Used where
FastStream hides what we need (seeking to offsets stored beside the results,
committing inside a Kafka transaction, isolating a poison record)."""

import asyncio
import functools
from collections.abc import Awaitable, Callable

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from shared.backoff import RetryPolicy
from shared.kafka.between_batches import BetweenBatches
from shared.kafka.consumer_metrics import BATCH_SPLITS, POISON_RECORDS
from shared.kafka.failures import is_dependency_failure, unprocessable
from shared.kafka.log_order import next_offsets
from shared.kafka.poison_streak import PoisonStreak
from shared.kafka.running_consumer import RunningConsumer
from shared.rejection import Rejected

log = structlog.get_logger(__name__)

Batch = list[ConsumerRecord]
BatchHandler = Callable[[Batch], Awaitable[None]]
# Makes a poison record's DLQ copy durable (and, for a consumer that commits
# inside its own transaction, moves past it); the loop commits after it otherwise.
DeadLetter = Callable[[ConsumerRecord, Rejected], Awaitable[None]]
# True when every dependency of the handler answers now.
Probe = Callable[[], Awaitable[bool]]


class BatchConsumer:
    """`handle` must make the batch's effects durable and idempotent, and must
    accept any part of a batch in its order; `commit` defaults to committing the
    consumer's position after it. Without `dead_letter` every failure is retried
    (nothing is ever isolated); with it, `probe` tells a dependency failure from a
    record failure, and a record is poison once it failed `poison_attempts` times
    alone while the probe found every dependency healthy. After
    `max_poison_streak` poison records with none handled between them, the loop
    stops isolating and fails closed for `poison_cooldown` seconds (or until a
    record succeeds): a bug that fails every record must not move the whole topic
    into the DLQ at full speed, and a run of hostile records must not stop it."""

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
        dead_letter: DeadLetter | None = None,
        probe: Probe | None = None,
        poison_attempts: int = 3,
        max_poison_streak: int = 5,
        poison_cooldown: float = 30.0,
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
        self.dead_letter = dead_letter
        self.probe = probe
        self.poison_attempts = poison_attempts
        self.poison_streak = PoisonStreak(max_poison_streak, poison_cooldown)
        self.healthy = True
        self.failures = 0
        self._stopping = asyncio.Event()
        self.in_flight = asyncio.Lock()
        # The partitions the group gave us, kept by `listener()`; None without it
        # (the consumer's own assignment is asked instead).
        self.owned: set[TopicPartition] | None = None

    def listener(self, inner: ConsumerRebalanceListener | None = None) -> BetweenBatches:
        """Returns the rebalance listener to subscribe with: partitions change hands only
        between batches (`BetweenBatches`); `inner` is called after."""
        return BetweenBatches(self, inner)

    def stop(self) -> None:
        self._stopping.set()

    def start(self) -> RunningConsumer:
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
        """Handles `batch` (and commits), isolating the records that fail on their
        own: the left half is settled before the right one, so each partition's
        records are still handled in their order."""
        attempt = 0
        alone = 0  # failures of a single record with healthy dependencies
        while True:
            try:
                await self._handle_owned(batch)
            except asyncio.CancelledError:
                raise
            except self.fatal:
                self._stop_unrecoverable()
                raise
            except Exception as error:
                self.failures += 1
                if self._stopping.is_set():
                    raise
                if self.dead_letter is None or await self._is_dependency_failure(error):
                    # Transient or not, skipping would lose a record: back off, retry.
                    self._set_health(False)
                    log.exception("batch failed, retrying", consumer=self.name, attempt=attempt)
                    await asyncio.sleep(self.retry.delay(attempt))
                    attempt += 1
                    continue
                if self.poison_streak.blaming_itself():
                    # Record after record fails and none succeeds: the fault is likely
                    # the service's own (a bug, a bad deploy), and dead-lettering would
                    # only empty the topic into the DLQ. Fail closed for a while.
                    self._set_health(False)
                    log.critical(
                        "every record fails with healthy dependencies, not isolating",
                        consumer=self.name,
                        dead_lettered_in_a_row=self.poison_streak.count,
                        error=f"{type(error).__name__}: {error}",
                    )
                    await asyncio.sleep(self.retry.delay(attempt))
                    attempt += 1
                    continue
                self._set_health(True)  # the dependencies answer: this is no outage
                if len(batch) > 1:
                    BATCH_SPLITS.labels(self.name).inc()
                    log.warning(
                        "batch fails with healthy dependencies, splitting it",
                        consumer=self.name,
                        size=len(batch),
                        error=f"{type(error).__name__}: {error}",
                    )
                    half = len(batch) // 2
                    await self._until_done(batch[:half])
                    await self._until_done(batch[half:])
                    return
                alone += 1
                if alone < self.poison_attempts:
                    # A record that fails once and then succeeds is not poison.
                    await asyncio.sleep(self.retry.delay(alone))
                    continue
                await self._call_retrying(functools.partial(self._isolate, batch[0], error))
                return
            else:
                self._set_health(True)
                self.poison_streak.reset()
                return

    async def _handle_owned(self, batch: Batch) -> None:
        async with self.in_flight:
            mine = self._owned_records(batch)
            if not mine:
                return
            await self.handle(mine)
            if self.commit:
                await self.consumer.commit(next_offsets(mine))

    def _owned_records(self, batch: Batch) -> Batch:
        # A rebalance since the fetch (or between two attempts) may have given some
        # partitions to another consumer, which reads them from the committed
        # offsets: their records are no longer ours to handle.
        owned = self.consumer.assignment() if self.owned is None else self.owned
        return [r for r in batch if TopicPartition(r.topic, r.partition) in owned]

    async def _is_dependency_failure(self, error: Exception) -> bool:
        if is_dependency_failure(error):
            return True
        if self.probe is None:
            return False
        try:
            return not await self.probe()
        except Exception:
            return True

    async def _isolate(self, record: ConsumerRecord, error: Exception) -> None:
        assert self.dead_letter is not None
        async with self.in_flight:
            if not self._owned_records([record]):
                return  # its partition moved: the new owner decides for itself
            rejected = unprocessable(error)
            await self.dead_letter(record, rejected)
            if self.commit:
                await self.consumer.commit(next_offsets([record]))
        self.poison_streak.add_poison()
        POISON_RECORDS.labels(self.name).inc()
        log.error(
            "poison record dead-lettered",
            consumer=self.name,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            detail=rejected.detail,
        )

    async def _call_retrying(self, step: Callable[[], Awaitable[None]]) -> None:
        attempt = 0
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except self.fatal:
                self._stop_unrecoverable()
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

    def _stop_unrecoverable(self) -> None:
        self._set_health(False)
        log.critical("unrecoverable, stopping the consumer", consumer=self.name)

    def _set_health(self, healthy: bool) -> None:
        if healthy != self.healthy and self.on_health is not None:
            self.on_health(healthy)
        self.healthy = healthy
