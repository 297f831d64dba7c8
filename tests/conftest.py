import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka import AIOKafkaProducer

from shared.db.migrate import apply_migrations
from shared.db.pool import open_pool
from shared.kafka.clients import durable_producer
from shared.kafka.provision import provision_topics
from tests.support.log_scan import MESSAGE_TEXTS, personal_data_in_logs
from tests.support.records import ISSUED, unique_phone
from tests.support.services import PORTS, ROOT, ServiceProcess
from tests.support.stack import Stack, locate_stack
from tests.support.webhooks import APP_SECRET, VERIFY_TOKEN
from tests.support.whatsapp_world import World


@pytest.fixture(scope="session")
def stack() -> Stack:
    located = locate_stack()
    asyncio.run(provision_topics(located.kafka_bootstrap, 3))
    asyncio.run(apply_migrations(located.database_url))
    return located


@pytest.fixture(scope="session")
async def pool(stack: Stack) -> AsyncIterator[object]:
    db = await open_pool(stack.database_url)
    yield db
    await db.close()


@pytest.fixture(scope="session")
async def producer(stack: Stack) -> AsyncIterator[AIOKafkaProducer]:
    """An idempotent producer with acks=all, as the services build theirs."""
    client = durable_producer(stack.kafka_bootstrap)
    await client.start()
    yield client
    await client.stop()


@pytest.fixture
def phone() -> str:
    """A fresh valid Russian mobile number per test, so tests never share a subject."""
    return unique_phone()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


# Tests of other rules must not depend on the hour they run at: the whole day is
# inside the quiet-hours window (tests/e2e/test_quiet_hours.py sets its own).
ALWAYS_OPEN = {"DISPATCHER_QUIET_HOURS": '{"default": "00:00-00:00"}'}
SECRETS = {"WHATSAPP_APP_SECRET": APP_SECRET.decode(), "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN}
# Erasures are carried out within a minute of their request, not a day: long enough
# for the tests of the request to see its effect first (tests/e2e/test_erasure_*.py).
ERASURE_GRACE_SECONDS = 40
ERASURE = {"ERASURE_GRACE_SECONDS": str(ERASURE_GRACE_SECONDS), "ERASURE_JOB_INTERVAL_SECONDS": "1"}


@pytest.fixture(scope="session")
def services(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    busy = [name for name, port in PORTS.items() if not _port_free(port)]
    if busy:
        pytest.fail(f"ports of {busy} are taken: stop the running system first (make down)")
    # Under .local/ (git-ignored) so a failed CI run leaves the services' logs behind.
    log_dir = ROOT / ".local" / "test-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = ALWAYS_OPEN | SECRETS | ERASURE
    running = {name: ServiceProcess(name, stack, log_dir, env) for name in PORTS}
    logs = log_dir.glob("*.log")
    written_before = {path: path.stat().st_size for path in logs}
    for process in running.values():
        process.start()
    try:
        for process in running.values():
            process.wait_ready()
        yield running
    finally:
        for process in running.values():
            process.stop()
    leaks = personal_data_in_logs(log_dir, written_before, ISSUED, MESSAGE_TEXTS)
    assert not leaks, "personal data in the services' logs:\n" + "\n".join(leaks[:20])


@pytest.fixture
async def world(stack: Stack, services: dict[str, ServiceProcess]) -> AsyncIterator[World]:
    """The running system, driven as Meta and another system would."""
    w = World(stack, services)
    await w.decisions.start()
    await w.outbound.start()
    try:
        yield w
    finally:
        await w.decisions.stop()
        await w.outbound.stop()
