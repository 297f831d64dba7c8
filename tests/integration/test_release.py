"""Deferred requests on the real broker and database: the gate records a
deferral with the request, the release hands it back on the dispatcher's own
topic once due, and the gate then decides it once, replacing the deferral;
a release repeated after that is a duplicate and publishes nothing."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from services.dispatcher.gate.handler import Gate
from services.dispatcher.gate.publication import OutputTopics
from services.dispatcher.gate.release import Release
from services.dispatcher.gate.store import GateStore
from shared.contract.purposes import Purpose
from shared.db.pool import open_pool
from shared.dispatch.quiet_hours import QuietHoursPolicy
from shared.dispatch.rules import FrequencyPolicy
from shared.kafka.clients import durable_producer, end_offsets
from shared.topics import (
    MESSAGES_DECISIONS,
    MESSAGES_DEFERRED,
    MESSAGES_OUTBOUND,
    MESSAGES_REQUESTS,
)
from tests.integration.test_gate import _Passed, _read_back
from tests.support.kafka import TopicReader, private_topics, produce
from tests.support.private_db import private_database
from tests.support.records import send_request, unique_phone
from tests.support.stack import Stack
from tests.unit.domain.builders import fold, granted

pytestmark = pytest.mark.integration


def _closed_now() -> QuietHoursPolicy:
    """A UTC window that opens six hours from now, for an hour."""
    opens = datetime.now(UTC) + timedelta(hours=6)
    return QuietHoursPolicy.from_settings(
        {"default": f"{opens:%H:%M}-{opens + timedelta(hours=1):%H:%M}"}
    )


@pytest.fixture
async def topics(stack: Stack) -> AsyncIterator[dict[str, str]]:
    prefix = f"test.release.{uuid.uuid4().hex[:8]}."
    names = {
        "requests": prefix + MESSAGES_REQUESTS,
        "decisions": prefix + MESSAGES_DECISIONS,
        "outbound": prefix + MESSAGES_OUTBOUND,
        "releases": prefix + MESSAGES_DEFERRED,
    }
    async with private_topics(stack.kafka_bootstrap, {t: {} for t in names.values()}):
        yield names


@pytest.fixture
async def pool(stack: Stack) -> AsyncIterator[Any]:
    async with private_database(stack) as url:
        db = await open_pool(url)
        yield db
        await db.close()


async def test_a_deferred_request_is_released_when_due_and_decided_once(
    stack: Stack, topics: dict[str, str], pool: Any
) -> None:
    outputs = OutputTopics(topics["decisions"], topics["outbound"], topics["releases"])
    store = GateStore(pool)
    producer = durable_producer(stack.kafka_bootstrap, transactional_id=f"t-{uuid.uuid4()}")
    plain = durable_producer(stack.kafka_bootstrap)
    await producer.start()
    await plain.start()
    decisions = await TopicReader(stack.kafka_bootstrap, topics["decisions"]).start()
    try:
        phone = unique_phone()
        state = fold(granted(Purpose.EVENT_REMINDER, subject=phone), subject=phone)
        await pool.execute(
            "INSERT INTO consent.subjects (subject, status, state, version)"
            " VALUES ($1, $2, $3::jsonb, 1)",
            phone,
            state.status.value,
            state.model_dump(mode="json"),
        )
        request = send_request(phone, timezone="UTC")
        sent = await produce(stack.kafka_bootstrap, topics["requests"], [(phone, request)])
        night = Gate(
            store, _Passed(), producer, "g", FrequencyPolicy(), outputs, quiet_hours=_closed_now()
        )
        await night.handle(await _read_back(stack, topics["requests"], sent))
        waiting = await pool.fetchrow("SELECT * FROM dispatcher.deferred")
        assert waiting["request_id"] == request["request_id"]
        release = Release(pool, plain, topics["releases"])
        assert await release.release_due() == 0, "released before its window opened"

        # Morning: the window has opened.
        await pool.execute("UPDATE dispatcher.deferred SET not_before = now()")
        assert await release.release_due() == 1
        assert await release.release_due() == 0, "released twice within a minute"
        [handed_back] = await _read_back(stack, topics["releases"], await _ends(stack, topics))
        morning = Gate(store, _Passed(), producer, "g", FrequencyPolicy(), outputs)
        await morning.handle([handed_back])
        await morning.handle([handed_back])  # redelivered: the same decision again

        await decisions.wait_for(lambda rs: len(rs) >= 3)
        values = [orjson.loads(r.value) for r in decisions.records]
        assert [(v["decision"], v["reason"]) for v in values] == [
            ("deferred", "quiet_hours"),
            ("dispatched", "consented"),
            ("dispatched", "consented"),
        ]
        assert values[1] == values[2]
        assert await pool.fetchval("SELECT count(*) FROM dispatcher.deferred") == 0
        row = await pool.fetchrow(
            "SELECT decision, source_topic FROM dispatcher.decisions WHERE request_id = $1",
            request["request_id"],
        )
        assert dict(row) == {"decision": "dispatched", "source_topic": topics["releases"]}
    finally:
        await decisions.stop()
        await producer.stop()
        await plain.stop()


class _Position:
    def __init__(self, partition: int, offset: int) -> None:
        self.partition, self.offset = partition, offset


async def _ends(stack: Stack, topics: dict[str, str]) -> list[_Position]:
    """Where the one release record is: the last offset of the partition holding one."""
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.kafka_bootstrap)
    await consumer.start()
    try:
        ends = await end_offsets(consumer, topics["releases"])
    finally:
        await consumer.stop()
    return [_Position(p, o - 1) for p, o in ends.items() if o > 0]
