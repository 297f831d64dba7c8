"""Limits at parse time on the real broker and database (issue 11).

A ConsentGranted of about 2 KB whose evidence nests 300 levels passed validation
and then failed the projector's batch in `model_dump_json` ("Maximum
serialization depth exceeded"), on every retry, holding back every event behind
it. Here a plain producer writes it to a private copy of consent.events.v1, a
valid event behind it, and the projector handles both as its consume loop does:
the deep one goes to the private DLQ as `too_deep`, the valid one is applied.
The projection is written to a private database (see test_projector.py).
"""

import asyncio
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from services.consent.projector import Projector
from services.consent.store import ConsentStore
from shared.consent.state import Status
from shared.db.pool import open_pool
from shared.kafka.clients import durable_producer
from shared.topics import CONSENT_EVENTS, dlq
from tests.support.kafka import TopicReader, private_topics
from tests.support.private_db import private_database
from tests.support.records import consent_event
from tests.support.signing import ERASURE_INDEX, TRUST
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

DEPTH = 300


@pytest.fixture
async def topic(stack: Stack) -> AsyncIterator[str]:
    """A private consent.events.v1 and its DLQ, one partition: no service reads them."""
    name = f"{CONSENT_EVENTS}.limits-{uuid.uuid4().hex[:12]}"
    configs = {name: {"message.timestamp.type": "LogAppendTime"}, dlq(name): {}}
    async with private_topics(stack.kafka_bootstrap, configs, partitions=1):
        yield name


@pytest.fixture
async def store(stack: Stack) -> AsyncIterator[ConsentStore]:
    async with private_database(stack) as url:
        db = await open_pool(url)
        yield ConsentStore(db, ERASURE_INDEX)
        await db.close()


def deep_grant(phone: str) -> bytes:
    """A valid ConsentGranted but for its evidence, nested DEPTH levels deep."""
    placeholder = orjson.dumps(consent_event(phone, evidence="\x01"))
    return placeholder.replace(b'"\\u0001"', b'{"a":' * DEPTH + b'"proof"' + b"}" * DEPTH)


async def read_back(consumer: AIOKafkaConsumer, topic: str, count: int) -> list[ConsumerRecord]:
    consumer.assign([TopicPartition(topic, 0)])
    await consumer.seek_to_beginning()
    records: list[ConsumerRecord] = []
    async with asyncio.timeout(15):
        while len(records) < count:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    return records


def header(record: ConsumerRecord, name: str) -> bytes | None:
    return next((v for k, v in record.headers if k == name), None)


async def test_an_evidence_nested_300_levels_is_dead_lettered_and_the_next_event_applied(
    stack: Stack, store: ConsentStore, topic: str, phone: str
) -> None:
    deep, valid = deep_grant(phone), consent_event(phone)
    plain = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    await plain.start()
    try:
        for value in (deep, orjson.dumps(valid)):
            await plain.send_and_wait(topic, value, key=phone.encode())
    finally:
        await plain.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.kafka_bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    producer = durable_producer(stack.kafka_bootstrap)
    await consumer.start()
    await producer.start()
    dead_letters = await TopicReader(stack.kafka_bootstrap, dlq(topic)).start()
    try:
        records = await read_back(consumer, topic, 2)

        await Projector(store, consumer, producer, TRUST).handle(records)

        [letter] = await dead_letters.wait_for(lambda rs: bool(rs), timeout=15)
    finally:
        await dead_letters.stop()
        await producer.stop()
        await consumer.stop()
    assert letter.value == deep
    assert letter.key == phone.encode()
    assert header(letter, "error.reason") == b"too_deep"
    detail = header(letter, "error.detail")
    assert detail is not None
    assert detail.startswith(b"evidence nests 300 levels")
    assert header(letter, "source.offset") == str(records[0].offset).encode()
    state = await store.subject(phone)
    assert state is not None
    assert state.status is Status.OPTED_IN
    assert state.last_event_id == valid["event_id"]
    assert (await store.tracking(CONSENT_EVENTS)) == {0: records[1].offset + 1}
