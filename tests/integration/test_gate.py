"""The dispatcher's gate on the real broker and database: the decision rows are
written while the outputs are sent in the open Kafka transaction, which commits
only after them; when another instance recorded some decisions first, the
transaction is aborted and the batch is published again without them.

Each test has topics of its own for the requests and the outputs (a dispatcher
running beside the tests must not decide these requests, and `make audit` of
the local system must not find these decisions), a private, migrated database
and a throwaway consumer group. The fence is passed at once: it has tests of its
own (tests/e2e/test_fail_closed.py), and the private database's projection
tracks nothing."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from services.dispatcher.gate.fence import Fence
from services.dispatcher.gate.handler import Gate
from services.dispatcher.gate.publication import OutputTopics
from services.dispatcher.gate.store import DecisionRow, GateStore
from shared.db.pool import open_pool
from shared.dispatch.rules import FrequencyPolicy
from shared.kafka.batch_consumer import BatchConsumer
from shared.kafka.clients import durable_producer, group_consumer
from shared.kafka.running_consumer import RunningConsumer
from shared.topics import MESSAGES_DECISIONS, MESSAGES_OUTBOUND, MESSAGES_REQUESTS
from tests.support.kafka import TopicReader, private_topics, produce
from tests.support.private_db import private_database
from tests.support.records import send_request, unique_phone
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


class _Passed(Fence):
    def __init__(self) -> None:  # no reader, no store: nothing to wait for
        pass

    async def wait(self) -> dict[int, int]:
        return {}


class _LateLookup(GateStore):
    """The idempotency lookup misses `hidden`: as when another instance records
    them between this instance's lookup and its insert."""

    def __init__(self, pool: Any, hidden: set[str]) -> None:
        super().__init__(pool)
        self.hidden = hidden

    async def decisions(self, request_ids: Sequence[str]) -> dict[str, DecisionRow]:
        found = await super().decisions(request_ids)
        return {i: row for i, row in found.items() if i not in self.hidden}


@pytest.fixture
async def requests_topic(stack: Stack) -> AsyncIterator[str]:
    """The requests topic of this test; the gate's outputs go to private copies too."""
    prefix = f"test.gate.{uuid.uuid4().hex[:8]}."
    topics = [prefix + t for t in (MESSAGES_REQUESTS, MESSAGES_DECISIONS, MESSAGES_OUTBOUND)]
    async with private_topics(stack.kafka_bootstrap, {t: {} for t in topics}):
        yield topics[0]


def _decisions_of(requests_topic: str) -> str:
    return requests_topic.removesuffix(MESSAGES_REQUESTS) + MESSAGES_DECISIONS


def _outputs_of(requests_topic: str) -> OutputTopics:
    prefix = requests_topic.removesuffix(MESSAGES_REQUESTS)
    return OutputTopics(prefix + MESSAGES_DECISIONS, prefix + MESSAGES_OUTBOUND)


@pytest.fixture
async def private_pool(stack: Stack) -> AsyncIterator[Any]:
    async with private_database(stack) as url:
        db = await open_pool(url)
        yield db
        await db.close()


async def _read_back(stack: Stack, topic: str, sent: list[Any]) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.kafka_bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20
    )
    await consumer.start()
    try:
        wanted = {(m.partition, m.offset) for m in sent}
        tps = sorted({TopicPartition(topic, p) for p, _ in wanted})
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, min(o for p, o in wanted if p == tp.partition))
        found: dict[tuple[int, int], ConsumerRecord] = {}
        async with asyncio.timeout(15):
            while len(found) < len(wanted):
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    found.update({(r.partition, r.offset): r for r in records})
        return [found[position] for position in sorted(wanted)]
    finally:
        await consumer.stop()


def _other_instances_row(request: dict[str, Any]) -> DecisionRow:
    decision = {"request_id": request["request_id"], "decision": "dropped"}
    return DecisionRow(
        request_id=request["request_id"],
        recipient=request["recipient"],
        purpose=request["purpose"],
        decision="dropped",
        reason="no_consent",
        consent_event_id=None,
        opt_out_event_id=None,
        decided_at=datetime.now(UTC),
        source_partition=99,  # not this record: another instance's view of it
        source_offset=0,
        decision_json=orjson.dumps(decision),
        outbound_json=None,
    )


async def test_decisions_recorded_first_by_another_instance_are_not_published_again(
    stack: Stack, requests_topic: str, private_pool: Any
) -> None:
    pool = private_pool
    requests = [send_request(unique_phone()) for _ in range(4)]
    taken = requests[1]
    hidden = {taken["request_id"]}
    store = _LateLookup(pool, hidden)
    assert await store.record([_other_instances_row(taken)]) == hidden
    group = f"test-gate-{uuid.uuid4().hex[:8]}"
    producer = durable_producer(
        stack.kafka_bootstrap, transactional_id=f"test-gate-{uuid.uuid4().hex[:8]}"
    )
    await producer.start()
    decisions = await TopicReader(stack.kafka_bootstrap, _decisions_of(requests_topic)).start()
    try:
        sent = await produce(
            stack.kafka_bootstrap, requests_topic, [(r["recipient"], r) for r in requests]
        )
        batch = await _read_back(stack, requests_topic, sent)
        gate = Gate(
            store, _Passed(), producer, group, FrequencyPolicy(), _outputs_of(requests_topic)
        )

        await gate.handle(batch)

        ours = {r["request_id"] for r in requests}
        await decisions.wait_for(lambda rs: len(_ids(rs, ours)) >= len(ours) - 1)
        await asyncio.sleep(0.5)  # a copy published by mistake would arrive by now
        await decisions.poll()
        assert sorted(_ids(decisions.records, ours)) == sorted(ours - hidden)
        # The other instance's row stands; this instance recorded the rest.
        rows = await pool.fetch(
            "SELECT request_id, source_partition FROM dispatcher.decisions"
            " WHERE request_id = ANY($1::text[])",
            list(ours),
        )
        assert {r["request_id"]: r["source_partition"] == 99 for r in rows} == {
            i: i in hidden for i in ours
        }
        # And the batch's offsets were committed with the (second) transaction.
        committed = await _committed(stack, group, batch)
        assert committed == {
            TopicPartition(r.topic, r.partition): max(
                x.offset + 1 for x in batch if x.partition == r.partition
            )
            for r in batch
        }
    finally:
        await decisions.stop()
        await producer.stop()


async def test_outputs_stay_invisible_until_their_decisions_are_recorded(
    stack: Stack, requests_topic: str, private_pool: Any
) -> None:
    """The outputs are sent while the rows are inserted, inside the open Kafka
    transaction: a read_committed consumer must see none of them before the rows
    are committed. The insert is held up by a lock on the decisions table."""
    requests = [send_request(unique_phone()) for _ in range(3)]
    ours = {r["request_id"] for r in requests}
    producer = durable_producer(
        stack.kafka_bootstrap, transactional_id=f"test-gate-{uuid.uuid4().hex[:8]}"
    )
    await producer.start()
    decisions = await TopicReader(stack.kafka_bootstrap, _decisions_of(requests_topic)).start()
    blocker = await private_pool.acquire()
    try:
        sent = await produce(
            stack.kafka_bootstrap, requests_topic, [(r["recipient"], r) for r in requests]
        )
        batch = await _read_back(stack, requests_topic, sent)
        gate = Gate(
            GateStore(private_pool),
            _Passed(),
            producer,
            "test-gate",
            FrequencyPolicy(),
            _outputs_of(requests_topic),
        )
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute("LOCK TABLE dispatcher.decisions IN EXCLUSIVE MODE")

        handling = asyncio.create_task(gate.handle(batch))
        await asyncio.sleep(1.5)  # the outputs are sent by now, the insert still waits
        await decisions.poll()

        assert not handling.done()
        assert _ids(decisions.records, ours) == []
        await lock.commit()
        await asyncio.wait_for(handling, 15)
        await decisions.wait_for(lambda rs: len(_ids(rs, ours)) >= len(ours))
        recorded = await private_pool.fetchval(
            "SELECT count(*) FROM dispatcher.decisions WHERE request_id = ANY($1::text[])",
            list(ours),
        )
        assert recorded == len(ours)
    finally:
        await private_pool.release(blocker)
        await decisions.stop()
        await producer.stop()


class _HeldAfterRecording(GateStore):
    """Records the decisions, then holds the batch before its Kafka transaction can
    commit: the window in which a rebalance could hand its partitions over."""

    def __init__(self, pool: Any) -> None:
        super().__init__(pool)
        self.recorded = asyncio.Event()
        self.release = asyncio.Event()

    async def record(self, rows: Sequence[DecisionRow]) -> set[str]:
        inserted = await super().record(rows)
        self.recorded.set()
        await self.release.wait()
        return inserted


async def test_partitions_change_hands_only_after_the_batch_in_flight_commits(
    stack: Stack, requests_topic: str, private_pool: Any
) -> None:
    """Instance A has recorded a batch's decisions and not yet committed its Kafka
    transaction when instance B joins the group. B must not get A's partitions
    before that commit: it would read them from the offsets committed before the
    batch, find A's rows for the same records and publish them a second time."""
    requests = [send_request(unique_phone()) for _ in range(9)]  # over every partition
    ours = {r["request_id"] for r in requests}
    group = f"test-gate-{uuid.uuid4().hex[:8]}"
    held = _HeldAfterRecording(private_pool)
    decisions = await TopicReader(stack.kafka_bootstrap, _decisions_of(requests_topic)).start()
    instances: list[tuple[AIOKafkaProducer, AIOKafkaConsumer, RunningConsumer]] = []

    async def start(store: GateStore) -> None:
        producer = durable_producer(
            stack.kafka_bootstrap, transactional_id=f"test-gate-{uuid.uuid4().hex[:8]}"
        )
        consumer = group_consumer(stack.kafka_bootstrap, group)
        await producer.start()
        await consumer.start()
        gate = Gate(
            store, _Passed(), producer, group, FrequencyPolicy(), _outputs_of(requests_topic)
        )
        loop = BatchConsumer(consumer, gate.handle, name="gate", commit=False)
        consumer.subscribe([requests_topic], listener=loop.listener())
        instances.append((producer, consumer, loop.start()))

    try:
        await produce(
            stack.kafka_bootstrap, requests_topic, [(r["recipient"], r) for r in requests]
        )
        await start(held)
        async with asyncio.timeout(30):
            await held.recorded.wait()
        await start(GateStore(private_pool))  # B joins: a rebalance begins
        await asyncio.sleep(8)  # A's heartbeat learns of it; B would be deciding by now
        held.release.set()

        await decisions.wait_for(lambda rs: len(set(_ids(rs, ours))) == len(ours))
        await asyncio.sleep(3)  # a second copy from B would arrive by now
        await decisions.poll()
        published = _ids(decisions.records, ours)
        assert sorted(published) == sorted(ours), "a decision was published twice"
    finally:
        held.release.set()
        for producer, consumer, running in instances:
            await running.stop()
            await consumer.stop()
            await producer.stop()
        await decisions.stop()


def _ids(records: list[ConsumerRecord], ours: set[str]) -> list[str]:
    return [
        request_id
        for r in records
        if (request_id := dict(r.headers).get("request_id", b"").decode()) in ours
    ]


async def _committed(
    stack: Stack, group: str, batch: list[ConsumerRecord]
) -> dict[TopicPartition, int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.kafka_bootstrap, group_id=group)
    await consumer.start()
    try:
        tps = {TopicPartition(r.topic, r.partition) for r in batch}
        return {tp: await consumer.committed(tp) for tp in tps}
    finally:
        await consumer.stop()
