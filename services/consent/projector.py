"""Projects consent.events.v1 into PostgreSQL: validates, dead-letters the unusable,
applies the rest."""

import functools
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.abc import ConsumerRebalanceListener

from services.consent import metrics
from services.consent.store import ConsentStore
from shared.consent.authenticity import Trust
from shared.consent.event_identity import Conflict
from shared.consent.logged_record import logged_event
from shared.consent.state import LoggedEvent
from shared.kafka.clients import consumer_lag
from shared.kafka.dlq import send_to_dlq
from shared.rejection import Rejected
from shared.topics import CONSENT_EVENTS

log = structlog.get_logger(__name__)

EVENT_ID_CONFLICT = "event_id_conflict"


class Projector(ConsumerRebalanceListener):  # type: ignore[misc]
    """Positions live in consent.tracking beside the rows they cover, so on every
    assignment the consumer seeks there: Kafka's committed offsets are only a hint."""

    def __init__(
        self,
        store: ConsentStore,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        trust: Trust,
    ) -> None:
        self.store = store
        self.trust = trust
        self.consumer = consumer
        self.producer = producer
        self.applied: dict[int, int] = {}

    async def on_partitions_revoked(self, revoked: Any) -> None:
        for tp in revoked:
            self.applied.pop(tp.partition, None)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        tracked = await self.store.tracking(CONSENT_EVENTS)
        for tp in assigned:
            if tp.partition in tracked:
                self.consumer.seek(tp, tracked[tp.partition])
                self.applied[tp.partition] = tracked[tp.partition]
        log.info("partitions assigned", partitions=sorted(tp.partition for tp in assigned))

    async def handle(self, batch: list[ConsumerRecord]) -> None:
        fresh: list[LoggedEvent] = []
        rejects: list[tuple[ConsumerRecord, Rejected]] = []
        positions: dict[int, int] = {}
        for record in batch:
            if record.offset < self.applied.get(record.partition, 0):
                continue  # already applied: a redelivery after a crash or rebalance
            positions[record.partition] = record.offset + 1
            logged = logged_event(record, self.trust)
            if isinstance(logged, Rejected):
                rejects.append((record, logged))
                continue
            fresh.append(logged)
        if rejects:
            # DLQ first: the source offset is only tracked once the reject is durable.
            await send_to_dlq(self.producer, rejects)
            for record, rejected in rejects:
                metrics.EVENTS_REJECTED.labels(rejected.reason).inc()
                log.warning(
                    "event rejected",
                    reason=rejected.reason,
                    detail=rejected.detail,
                    partition=record.partition,
                    offset=record.offset,
                )
        if positions:
            folded = await self.store.apply(
                CONSENT_EVENTS,
                fresh,
                positions,
                on_conflicts=functools.partial(self._dead_letter_conflicts, batch),
            )
            self.applied.update(positions)
            metrics.EVENTS_APPLIED.inc(len(fresh))
            refolded = sum(f.refolded for f in folded)
            metrics.SUBJECTS_REFOLDED.inc(refolded)
            metrics.SUBJECTS_FOLDED_ON.inc(len(folded) - refolded)

    async def _dead_letter_conflicts(
        self, batch: list[ConsumerRecord], conflicts: list[Conflict]
    ) -> None:
        by_position = {(r.partition, r.offset): r for r in batch}
        await send_to_dlq(
            self.producer,
            [(by_position[(c.again.partition, c.again.offset)], _conflict(c)) for c in conflicts],
        )
        metrics.EVENT_ID_CONFLICTS.inc(len(conflicts))
        metrics.EVENTS_REJECTED.labels(EVENT_ID_CONFLICT).inc(len(conflicts))
        for c in conflicts:
            log.warning("event_id reused with another payload", event_id=c.again.event.event_id)

    async def dead_letter(self, record: ConsumerRecord, rejected: Rejected) -> None:
        """Dead-letters a record that failed on its own: its DLQ copy, then its position tracked
        (the fence waits for the tracked positions, so a poison record left
        untracked would hold every decision back)."""
        await send_to_dlq(self.producer, [(record, rejected)])
        position = {record.partition: record.offset + 1}
        await self.store.advance(CONSENT_EVENTS, position)
        self.applied[record.partition] = max(
            self.applied.get(record.partition, 0), *position.values()
        )
        metrics.EVENTS_REJECTED.labels(rejected.reason).inc()

    async def track_idle_positions(self) -> None:
        """Transaction markers occupy offsets but never reach `handle`; the fence
        compares with end offsets, so the tracked position must step over them."""
        moved: dict[int, int] = {}
        for tp in self.consumer.assignment():
            position = await self.consumer.position(tp)
            if position > self.applied.get(tp.partition, 0):
                moved[tp.partition] = position
        for partition, lag in (await consumer_lag(self.consumer)).items():
            metrics.PROJECTION_LAG.labels(str(partition)).set(lag)
        if moved:
            await self.store.advance(CONSENT_EVENTS, moved)
            self.applied.update(moved)


def _conflict(conflict: Conflict) -> Rejected:
    return Rejected(
        reason=EVENT_ID_CONFLICT,
        detail=(
            f"event_id {conflict.again.event.event_id!r} was recorded first with another "
            f"payload (partition {conflict.first_partition}, offset {conflict.first_offset}); "
            "this event is not applied"
        ),
    )
