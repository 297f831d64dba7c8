"""Takes one decision per request_id on messages.requests.v1, and publishes the send when
it is allowed.

Per batch: fence, one lookup, pure decisions, one DB transaction, then one Kafka
transaction carrying the outputs and the consumed offsets together."""

import asyncio
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer, ConsumerRecord

from services.dispatcher import metrics
from services.dispatcher.gate.decide import Parsed, decide_batch, invalid_row, parse_batch
from services.dispatcher.gate.fence import Fence
from services.dispatcher.gate.publication import OutputTopics, Publication, plan_publication
from services.dispatcher.gate.store import DecisionRow, GateStore
from shared.contract.decisions import Decision
from shared.contract.requests import SendRequest, salvage_request_id
from shared.dispatch.facts import DispatchFacts
from shared.dispatch.quiet_hours import QuietHoursPolicy
from shared.dispatch.rules import FrequencyPolicy
from shared.dispatch.timing import ALWAYS_OPEN
from shared.kafka.log_order import next_offsets
from shared.rejection import Rejected
from shared.topics import CONSENT_EVENTS


class _LostRaceError(Exception):
    """Another instance recorded some of the batch's decisions first."""

    def __init__(self, request_ids: set[str]) -> None:
        super().__init__(f"{len(request_ids)} decisions recorded first by another instance")
        self.request_ids = request_ids


class Gate:
    def __init__(
        self,
        store: GateStore,
        fence: Fence,
        producer: AIOKafkaProducer,
        group_id: str,
        frequency: FrequencyPolicy,
        topics: OutputTopics | None = None,
        quiet_hours: QuietHoursPolicy = ALWAYS_OPEN,
    ) -> None:
        self.store = store
        self.fence = fence
        self.producer = producer
        self.group_id = group_id
        self.frequency = frequency
        self.topics = topics or OutputTopics()
        self.quiet_hours = quiet_hours

    async def handle(self, batch: list[ConsumerRecord]) -> None:
        metrics.BATCH_SIZE.observe(len(batch))
        parsed = parse_batch(batch)
        stored = await self.store.decisions(sorted({p.request_id for p in parsed if p.request_id}))
        # A release of a deferred request is decided again; any other record whose
        # request_id has a row is a redelivery or a duplicate.
        due = {
            p.request_id: deferral
            for p in parsed
            if p.request_id in stored
            and (deferral := self._deferral_released(p.record, stored[p.request_id]))
        }
        fresh = [p for p in parsed if p.request_id not in stored or p.request_id in due]
        new_rows = await self._decide(fresh, due) if fresh else {}
        await self._publish_batch(batch, parsed, stored, new_rows)

    async def dead_letter(self, record: ConsumerRecord, rejected: Rejected) -> None:
        """Dead-letters a request that failed on its own: its DLQ copy and, when it has
        a request_id not yet decided, its one decision (`invalid_request`), published
        with its offset in one transaction like any batch."""
        request_id = salvage_request_id(record.value)
        parsed = [Parsed(record, rejected, request_id)]
        stored = await self.store.decisions([request_id]) if request_id else {}
        new_rows = {}
        was = stored.get(request_id) if request_id else None
        # A release that fails on its own ends the wait too, or it would come back.
        replaces = self._deferral_released(record, was) if was is not None else None
        if request_id is not None and (was is None or replaces is not None):
            now = datetime.now(UTC)
            new_rows[request_id] = invalid_row(
                record, request_id, rejected, now, fence={}, replaces=replaces
            )
        await self._publish_batch([record], parsed, stored, new_rows)

    def _deferral_released(self, record: ConsumerRecord, stored: DecisionRow) -> datetime | None:
        """Returns the decided_at of the deferral `record` releases, or None when the
        record is no release or its request is no longer deferred."""
        if record.topic == self.topics.releases and stored.decision == Decision.DEFERRED:
            return stored.decided_at
        return None

    async def _publish_batch(
        self,
        batch: list[ConsumerRecord],
        parsed: list[Parsed],
        stored: dict[str, DecisionRow],
        new_rows: dict[str, DecisionRow],
    ) -> None:
        outputs = plan_publication(parsed, stored, new_rows, self.topics)
        lost = await self._publish(batch, outputs, list(new_rows.values()))
        if lost:
            # Another instance decided some first (a rebalance mid-batch): its
            # outputs stand, and this batch publishes nothing for them.
            outputs = plan_publication(parsed, stored, new_rows, self.topics, withheld=lost)
            await self._publish(batch, outputs, [])
        outputs.record_metrics()

    async def _decide(
        self, fresh: list[Parsed], due: dict[str, datetime] | None = None
    ) -> dict[str, DecisionRow]:
        # decided_at is taken BEFORE the end offsets are read: whatever Kafka had
        # acknowledged by then is below them, so "decided after the opt-out's
        # acknowledgement" always implies "saw it" (contract section 4).
        now = datetime.now(UTC)
        await self.fence.wait()
        requests = [p.request for p in fresh if isinstance(p.request, SendRequest)]
        recipients = sorted({r.recipient for r in requests})
        # The states and the positions they reflect, from one snapshot: the
        # decision records them, so the audit refolds exactly what was seen. The
        # dispatcher's own facts are independent of it: read at the same time.
        (states, fence), dispatched, confirmed = await asyncio.gather(
            self.store.states_with_positions(recipients, CONSENT_EVENTS),
            self.store.dispatched_since(recipients, now - self.frequency.window),
            self.store.confirmed_opt_outs(
                [r.opt_out_event_id for r in requests if r.opt_out_event_id]
            ),
        )
        linked = sorted({i for s in states.values() for i in s.identifiers} - set(recipients))
        if linked:
            # The cap counts what a person received at any of their identifiers.
            dispatched |= await self.store.dispatched_since(linked, now - self.frequency.window)
        facts = DispatchFacts(self.frequency.window, dispatched, confirmed)
        return decide_batch(fresh, states, facts, now, self.frequency, fence, self.quiet_hours, due)

    async def _publish(
        self, batch: list[ConsumerRecord], outputs: Publication, new_rows: list[DecisionRow]
    ) -> set[str]:
        """Publishes in one Kafka transaction: the outputs and the consumed offsets. The new
        decisions are recorded in PostgreSQL while the outputs are sent, and the
        transaction commits only once they are: a decision row always exists before
        its outputs can be read. Returns the request_ids another instance recorded
        first: then the transaction is aborted and nothing is published."""
        offsets = next_offsets(batch)
        try:
            async with self.producer.transaction():
                recording = asyncio.create_task(self.store.record(new_rows)) if new_rows else None
                try:
                    for topic, key, value, headers in outputs.sends:
                        await self.producer.send(topic, value=value, key=key, headers=headers)
                finally:
                    inserted = await recording if recording is not None else set()
                lost = {row.request_id for row in new_rows} - inserted
                if lost:
                    raise _LostRaceError(lost)
                await self.producer.send_offsets_to_transaction(offsets, self.group_id)
        except _LostRaceError as race:
            return race.request_ids
        return set()
