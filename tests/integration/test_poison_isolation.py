"""Poison isolation wired as the services wire it (`projector_loop`, `gate_loop`),
on the real broker and database: a record that fails on its own while PostgreSQL
and Kafka answer is dead-lettered with `unprocessable` and the exception, and the
record behind it in its partition is still handled.

The failure is injected into the store or the gate (a record that breaks the
code in a way nobody has thought of yet cannot be written down in advance: the
known ones are refused at parse time and have tests of their own)."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord

from services.consent.main import projector_loop
from services.consent.projector import Projector
from services.consent.store import ConsentStore, Folded, OnConflicts
from services.dispatcher.gate.decide import Parsed
from services.dispatcher.gate.fence import Fence
from services.dispatcher.gate.handler import Gate
from services.dispatcher.gate.publication import OutputTopics
from services.dispatcher.gate.store import DecisionRow, GateStore
from services.dispatcher.main import gate_loop
from shared.consent.state import LoggedEvent
from shared.db.pool import open_pool
from shared.dispatch.rules import FrequencyPolicy
from shared.kafka.clients import durable_producer, end_offsets, group_consumer
from shared.topics import (
    CONSENT_EVENTS,
    MESSAGES_DECISIONS,
    MESSAGES_OUTBOUND,
    MESSAGES_REQUESTS,
    dlq,
)
from tests.support.kafka import TopicReader, private_topics, produce
from tests.support.private_db import private_database
from tests.support.records import consent_event, send_request, unique_phone
from tests.support.signing import ERASURE_INDEX, TRUST
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def _headers(record: ConsumerRecord) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


# ------------------------------------------------------------------ projector


class _BreaksOn(ConsentStore):
    """Fails, as a bug would, whenever a batch holds an event of `poisoned`."""

    def __init__(self, pool: Any, poisoned: str) -> None:
        super().__init__(pool, ERASURE_INDEX)
        self.poisoned = poisoned

    async def apply(
        self,
        topic: str,
        events: Sequence[LoggedEvent],
        positions: dict[int, int],
        on_conflicts: OnConflicts | None = None,
    ) -> list[Folded]:
        if any(e.event.subject == self.poisoned for e in events):
            raise ValueError("Maximum serialization depth exceeded")
        return await super().apply(topic, events, positions, on_conflicts)


@pytest.fixture
async def private_pool(stack: Stack) -> AsyncIterator[Any]:
    async with private_database(stack) as url:
        db = await open_pool(url)
        yield db
        await db.close()


async def test_the_projector_dead_letters_a_poison_event_and_applies_the_one_behind(
    stack: Stack, private_pool: Any
) -> None:
    poisoned, healthy = unique_phone(), unique_phone()
    store = _BreaksOn(private_pool, poisoned)
    producer = durable_producer(stack.kafka_bootstrap)
    consumer = group_consumer(stack.kafka_bootstrap, f"test-poison-{uuid.uuid4().hex[:8]}")
    await producer.start()
    await consumer.start()
    dead = await TopicReader(stack.kafka_bootstrap, dlq(CONSENT_EVENTS)).start()
    # The private projection starts at the log's end, as a service would after a rebuild.
    ends = await end_offsets(consumer, CONSENT_EVENTS)
    await store.advance(CONSENT_EVENTS, ends)
    projector = Projector(store, consumer, producer, TRUST)
    loop = projector_loop(consumer, projector, private_pool, max_batch=100)
    consumer.subscribe([CONSENT_EVENTS], listener=loop.listener(projector))
    running = loop.start()
    try:
        # One key: both land in one partition, the healthy event behind the poison.
        poison = consent_event(poisoned, "ConsentGranted")
        behind = consent_event(healthy, "ConsentGranted")
        sent = await produce(
            stack.kafka_bootstrap,
            CONSENT_EVENTS,
            [(poisoned, poison), (poisoned, {**behind, "subject": healthy})],
        )
        async with asyncio.timeout(30):
            while await store.subject(healthy) is None:
                assert not running.task.done(), running.task
                await asyncio.sleep(0.1)
        records = await dead.wait_for(
            lambda rs: any(_headers(r).get("source.offset") == str(sent[0].offset) for r in rs)
        )
        letter = next(r for r in records if orjson.loads(r.value)["event_id"] == poison["event_id"])
        headers = _headers(letter)
        assert headers["error.reason"] == "unprocessable"
        assert headers["error.detail"] == "ValueError: Maximum serialization depth exceeded"
        assert await store.subject(poisoned) is None
        # The poison's position is tracked: the fence does not wait for it for ever.
        tracked = await store.tracking(CONSENT_EVENTS)
        assert tracked[sent[0].partition] >= sent[1].offset + 1
        assert running.healthy
    finally:
        await running.stop()
        await dead.stop()
        await consumer.stop()
        await producer.stop()


# ------------------------------------------------------------------ gate


class _Passed(Fence):
    def __init__(self) -> None:  # the private projection tracks nothing to wait for
        pass

    async def wait(self) -> dict[int, int]:
        return {}


class _GateBreaksOn(Gate):
    """Fails, as a bug would, whenever a batch holds a request to `poisoned`."""

    poisoned = ""

    async def _decide(
        self, fresh: list[Parsed], due: dict[str, datetime] | None = None
    ) -> dict[str, DecisionRow]:
        if any(getattr(p.request, "recipient", None) == self.poisoned for p in fresh):
            raise RecursionError("maximum recursion depth exceeded")
        return await super()._decide(fresh, due)


@pytest.fixture
async def requests_topic(stack: Stack) -> AsyncIterator[str]:
    prefix = f"test.poison.{uuid.uuid4().hex[:8]}."
    requests, decisions, outbound = (
        prefix + t for t in (MESSAGES_REQUESTS, MESSAGES_DECISIONS, MESSAGES_OUTBOUND)
    )
    topics = {t: {} for t in (requests, dlq(requests), decisions, outbound)}
    async with private_topics(stack.kafka_bootstrap, topics):
        yield requests


async def test_the_gate_dead_letters_a_poison_request_with_its_one_decision(
    stack: Stack, requests_topic: str, private_pool: Any
) -> None:
    poisoned, healthy = unique_phone(), unique_phone()
    group = f"test-poison-{uuid.uuid4().hex[:8]}"
    producer = durable_producer(stack.kafka_bootstrap, transactional_id=group)
    consumer = group_consumer(stack.kafka_bootstrap, group)
    await producer.start()
    await consumer.start()
    decisions_topic = requests_topic.removesuffix(MESSAGES_REQUESTS) + MESSAGES_DECISIONS
    decisions = await TopicReader(stack.kafka_bootstrap, decisions_topic).start()
    dead = await TopicReader(stack.kafka_bootstrap, dlq(requests_topic)).start()
    prefix = requests_topic.removesuffix(MESSAGES_REQUESTS)
    outputs = OutputTopics(prefix + MESSAGES_DECISIONS, prefix + MESSAGES_OUTBOUND)
    gate = _GateBreaksOn(
        GateStore(private_pool), _Passed(), producer, group, FrequencyPolicy(), outputs
    )
    gate.poisoned = poisoned
    loop = gate_loop(consumer, gate, private_pool, max_batch=100)
    consumer.subscribe([requests_topic], listener=loop.listener())
    running = loop.start()
    try:
        poison = send_request(poisoned)
        behind = send_request(healthy)
        await produce(
            stack.kafka_bootstrap, requests_topic, [(poisoned, poison), (poisoned, behind)]
        )
        ours = {poison["request_id"], behind["request_id"]}
        await decisions.wait_for(
            lambda rs: {orjson.loads(r.value)["request_id"] for r in rs} >= ours
        )
        await dead.wait_for(lambda rs: len(rs) >= 1)
        await asyncio.sleep(1)  # a second decision would arrive by now
        await decisions.poll()

        by_id = [orjson.loads(r.value) for r in decisions.records]
        assert sorted(d["request_id"] for d in by_id) == sorted(ours), "one decision each"
        verdicts = {d["request_id"]: (d["decision"], d["reason"]) for d in by_id}
        assert verdicts[poison["request_id"]] == ("dropped", "invalid_request")
        assert verdicts[behind["request_id"]] == ("dropped", "no_consent")
        [letter] = dead.records
        assert orjson.loads(letter.value)["request_id"] == poison["request_id"]
        headers = _headers(letter)
        assert headers["error.reason"] == "unprocessable"
        assert headers["error.detail"] == "RecursionError: maximum recursion depth exceeded"
        assert running.healthy
    finally:
        await running.stop()
        await decisions.stop()
        await dead.stop()
        await consumer.stop()
        await producer.stop()
