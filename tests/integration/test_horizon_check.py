"""The dispatcher refuses to start when a topic its gate reads keeps records longer than
DISPATCHER_HORIZON_DAYS keeps their request_ids: read from the real broker, on
topics of the test's own (KAFKA_TOPIC_PREFIX), so no running system is touched."""

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.dispatcher.retention.horizon import retention_refusal
from shared.kafka.topic_retention import retention_ms
from shared.topics import MESSAGES_DEFERRED, MESSAGES_REQUESTS, PREFIX
from tests.support.kafka import private_topics
from tests.support.secured_kafka import free_port
from tests.support.services import ServiceProcess
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

MONTH_MS = 30 * 86_400_000


@pytest.fixture
async def prefix(stack: Stack) -> AsyncIterator[str]:
    """A prefix whose requests topic keeps a month, its deferred topic the broker's week."""
    prefix = f"test.horizon.{uuid.uuid4().hex[:8]}."
    topics = {
        prefix + MESSAGES_REQUESTS.removeprefix(PREFIX): {"retention.ms": str(MONTH_MS)},
        prefix + MESSAGES_DEFERRED.removeprefix(PREFIX): {},
    }
    async with private_topics(stack.kafka_bootstrap, topics):
        yield prefix


async def test_retention_is_read_as_the_broker_applies_it(stack: Stack, prefix: str) -> None:
    requests = prefix + MESSAGES_REQUESTS.removeprefix(PREFIX)
    deferred = prefix + MESSAGES_DEFERRED.removeprefix(PREFIX)

    found = await retention_ms(stack.kafka_bootstrap, [requests, deferred])

    # The deferred topic sets none: the broker's log.retention.hours, 168 by default.
    assert found == {requests: MONTH_MS, deferred: 7 * 86_400_000}
    assert retention_refusal(7, found) is not None
    assert retention_refusal(30, found) is None


async def test_a_topic_kept_for_ever_is_read_as_such(stack: Stack) -> None:
    topic = f"test.horizon.{uuid.uuid4().hex[:8]}.forever"
    async with private_topics(stack.kafka_bootstrap, {topic: {"retention.ms": "-1"}}):
        found = await retention_ms(stack.kafka_bootstrap, [topic])

    assert found == {topic: -1}
    assert "keeps its records for ever (retention.ms=-1)" in str(retention_refusal(7, found))


async def test_a_topic_not_provisioned_is_left_out(stack: Stack, prefix: str) -> None:
    """It keeps nothing to redeliver: the gate waits for it, as it did before."""
    requests = prefix + MESSAGES_REQUESTS.removeprefix(PREFIX)
    absent = f"test.horizon.{uuid.uuid4().hex[:8]}.absent"

    found = await retention_ms(stack.kafka_bootstrap, [requests, absent])

    assert found == {requests: MONTH_MS}


async def test_the_dispatcher_refuses_to_start_while_its_requests_outlive_the_horizon(
    stack: Stack, prefix: str, tmp_path: Path
) -> None:
    port = free_port(33_500, 34_000)
    dispatcher = ServiceProcess(
        "dispatcher",
        stack,
        tmp_path,
        {
            "KAFKA_TOPIC_PREFIX": prefix,
            "DISPATCHER_HTTP_PORT": str(port),
            "DISPATCHER_ADMIN_PORT": str(free_port(34_001, 34_500)),
            "DISPATCHER_HORIZON_DAYS": "7",
        },
    )
    dispatcher.start()
    assert dispatcher.process is not None
    try:
        status = await asyncio.to_thread(dispatcher.process.wait, 60)
    except subprocess.TimeoutExpired:
        dispatcher.stop()
        pytest.fail(f"the dispatcher started: {dispatcher.log_tail()}")

    assert status != 0
    log = dispatcher.log_path.read_text(errors="replace")
    assert "DISPATCHER_HORIZON_DAYS=7, 604800000 ms, is shorter" in log
    assert f"{prefix}messages.requests.v1 has retention.ms={MONTH_MS} ms (30 days)" in log
    assert "messages.deferred.v1 has" not in log
