"""On a secured broker (KAFKA_SECURED=1: SASL/SCRAM-SHA-512, ACLs from
shared/kafka/acl_matrix.py) a principal may do only what the matrix grants it,
nobody connects without a valid password, and the whole path still works with
each service as its own principal.

The broker is the module's own (tests/support/secured_kafka.py), so the shared
local one is never touched; the services run on free HTTP ports with a database
of their own. It needs java and the jars of `make deps`; without them the test is
skipped, saying which is missing."""

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)

from shared.db.migrate import apply_migrations
from shared.kafka import topic_retention
from shared.kafka.acl_matrix import MATRIX
from shared.kafka.clients import assign_from_end
from shared.kafka.topic_retention import TopicConfigNotAuthorizedError, retention_ms
from shared.kafka.topic_specs import topic_specs
from shared.settings import LOCAL_DATABASE_URL
from shared.topics import (
    CONSENT_EVENTS,
    MESSAGES_DECISIONS,
    MESSAGES_DEFERRED,
    MESSAGES_OUTBOUND,
    MESSAGES_REQUESTS,
    WHATSAPP_INBOUND,
)
from tests.support.private_db import private_database
from tests.support.records import consent_granted, send_request, unique_phone
from tests.support.secured_kafka import (
    ROOT,
    OwnPostgres,
    SecuredKafka,
    free_port,
    missing_prerequisite,
)
from tests.support.services import ServiceProcess
from tests.support.stack import Stack
from tests.support.webhooks import APP_SECRET, VERIFY_TOKEN, signed, text_webhook

MISSING = missing_prerequisite()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(MISSING is not None, reason=MISSING or ""),
    pytest.mark.timeout(300),
]
HOME = ROOT / ".local" / "test-kafka-secured"


@pytest.fixture(scope="module")
def kafka() -> Iterator[SecuredKafka]:
    # Clear of the project's brokers (9092-9095, 19092..39094, the fault runs' 19192..31192).
    running = SecuredKafka(HOME, free_port(21_000, 29_000, pair=True))
    started = time.monotonic()
    try:
        running.start()
        print(f"secured broker ready, topics and ACLs applied in {time.monotonic() - started:.1f}s")
        yield running
    finally:
        running.script("stop")


@asynccontextmanager
async def _producer(
    kafka: SecuredKafka, principal: str, password: str | None = None, **extra: Any
) -> AsyncIterator[Any]:
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=10_000,
        **extra,
        **kafka.options(principal, password),
    )
    try:
        await producer.start()
        yield producer
    finally:
        await producer.stop()


async def _write(kafka: SecuredKafka, principal: str, topic: str, **extra: Any) -> None:
    async with _producer(kafka, principal, **extra) as producer:
        await producer.send_and_wait(topic, b'{"written": "by a test"}')


@pytest.mark.parametrize(
    ("principal", "topic", "refusal"),
    [
        # Only the dispatcher writes what is sent and what was decided.
        ("producer", MESSAGES_OUTBOUND, TopicAuthorizationFailedError),
        ("producer", MESSAGES_DECISIONS, TopicAuthorizationFailedError),
        ("inbound", MESSAGES_OUTBOUND, TopicAuthorizationFailedError),
        ("inbound", MESSAGES_DECISIONS, TopicAuthorizationFailedError),
        # Webhooks enter through inbound or a gateway only, and a gateway writes nothing else.
        ("producer", WHATSAPP_INBOUND, TopicAuthorizationFailedError),
        ("gateway", CONSENT_EVENTS, TopicAuthorizationFailedError),
        ("gateway", MESSAGES_REQUESTS, TopicAuthorizationFailedError),
        # The consent service writes the log (erasure requests), never what is sent.
        ("consent", MESSAGES_REQUESTS, TopicAuthorizationFailedError),
        ("consent", MESSAGES_OUTBOUND, TopicAuthorizationFailedError),
        # Writing nothing at all, the audit may not even start a producer.
        ("audit", CONSENT_EVENTS, ClusterAuthorizationFailedError),
    ],
)
async def test_a_principal_is_refused_writes_the_matrix_does_not_grant(
    kafka: SecuredKafka, principal: str, topic: str, refusal: type[Exception]
) -> None:
    with pytest.raises(refusal):
        await _write(kafka, principal, topic)


async def test_a_gateway_may_forward_webhooks(kafka: SecuredKafka) -> None:
    await _write(kafka, "gateway", WHATSAPP_INBOUND)


async def test_only_the_dispatcher_uses_the_dispatchers_transactional_ids(
    kafka: SecuredKafka,
) -> None:
    with pytest.raises(TransactionalIdAuthorizationFailed):
        await _write(kafka, "producer", CONSENT_EVENTS, transactional_id="dispatcher-forged")
    dispatcher = _producer(kafka, "dispatcher", transactional_id="dispatcher-test")
    async with dispatcher as producer, producer.transaction():
        await producer.send(MESSAGES_DECISIONS, b'{"written": "by a test"}')


@pytest.mark.parametrize("principal", sorted(MATRIX))
async def test_a_principal_sees_only_the_topics_of_its_row(
    kafka: SecuredKafka, principal: str
) -> None:
    access = MATRIX[principal]
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, **kafka.options(principal))
    await consumer.start()
    try:
        assert await consumer.topics() == {*access.reads, *access.writes, *access.describes}
    finally:
        await consumer.stop()


async def test_a_topic_the_dispatcher_only_writes_and_fences_on_it_may_not_read(
    kafka: SecuredKafka,
) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap,
        auto_offset_reset="earliest",
        **kafka.options("dispatcher"),
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(CONSENT_EVENTS, 0)])
        assert await consumer.end_offsets([TopicPartition(CONSENT_EVENTS, 0)])
        with pytest.raises(TopicAuthorizationFailedError):
            async with asyncio.timeout(20):
                await consumer.getone()
    finally:
        await consumer.stop()


async def test_the_dispatcher_reads_the_retention_of_its_gates_topics(
    kafka: SecuredKafka, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The horizon check at start (services/dispatcher/retention/topics.py), as the
    dispatcher's principal: read, not refused and skipped with a warning."""
    monkeypatch.setattr(topic_retention, "security_options", lambda: kafka.options("dispatcher"))
    found = await retention_ms(kafka.bootstrap, [MESSAGES_REQUESTS, MESSAGES_DEFERRED])
    assert set(found) == {MESSAGES_REQUESTS, MESSAGES_DEFERRED}
    with pytest.raises(TopicConfigNotAuthorizedError):
        await retention_ms(kafka.bootstrap, [MESSAGES_OUTBOUND])


async def test_the_dispatcher_may_not_describe_the_configs_of_any_other_topic(
    kafka: SecuredKafka,
) -> None:
    others = sorted({spec.name for spec in topic_specs()} - {MESSAGES_REQUESTS, MESSAGES_DEFERRED})
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, **kafka.options("dispatcher"))
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in others]
        )
    finally:
        await admin.close()
    codes = {
        resource["resource_name"]: resource["error_code"]
        for response in responses
        for resource in response.to_object()["resources"]
    }
    assert codes == dict.fromkeys(others, TopicAuthorizationFailedError.errno)


async def test_a_wrong_password_is_refused(kafka: SecuredKafka) -> None:
    refusals_before = kafka.log().count("invalid credentials")
    with pytest.raises(KafkaConnectionError):
        await _write(kafka, "producer", CONSENT_EVENTS, password="not-the-password")
    assert kafka.log().count("invalid credentials") > refusals_before


@pytest.mark.parametrize("listener", ["broker", "controller"])
async def test_a_client_without_credentials_cannot_connect(
    kafka: SecuredKafka, listener: str
) -> None:
    port = kafka.port if listener == "broker" else kafka.port + 1
    producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=5_000)
    try:
        with pytest.raises(KafkaConnectionError):
            await producer.start()
    finally:
        await producer.stop()


@asynccontextmanager
async def _database(home: Path) -> AsyncIterator[str]:
    """A fresh database: on the PostgreSQL given or running, else on one of our own."""
    given = os.environ.get("DATABASE_URL")
    with socket.socket() as probe:
        local_running = probe.connect_ex(("127.0.0.1", 55432)) == 0
    if given or local_running:
        async with private_database(Stack("", given or LOCAL_DATABASE_URL)) as url:
            yield url
        return
    postgres = OwnPostgres(home / "pg", free_port(32_000, 32_700))
    try:
        url = postgres.start()
        await apply_migrations(url)  # the services refuse a schema behind their code
        yield url
    finally:
        postgres.stop()


@pytest.fixture(scope="module")
async def services(kafka: SecuredKafka) -> AsyncIterator[dict[str, ServiceProcess]]:
    """inbound, consent and the dispatcher, each as its own principal."""
    async with _database(HOME) as database_url:
        stack = Stack(kafka.bootstrap, database_url)
        logs = HOME / "logs"
        logs.mkdir(exist_ok=True)
        running = {}
        for name in ("inbound", "consent", "dispatcher"):
            port = free_port(32_000, 32_700)
            env = {
                **kafka.client_env(name),
                f"{name.upper()}_HTTP_PORT": str(port),
                f"{name.upper()}_ADMIN_PORT": str(free_port(32_701, 33_400)),
                "WHATSAPP_APP_SECRET": APP_SECRET.decode(),
                "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
                "DISPATCHER_QUIET_HOURS": '{"default": "00:00-00:00"}',
            }
            running[name] = ServiceProcess(name, stack, logs, env)
            running[name].port = port
        try:
            for process in running.values():
                process.start()
            for process in running.values():
                await asyncio.to_thread(process.wait_ready, 90)
            yield running
        finally:
            for process in running.values():
                process.stop()


async def test_a_consented_request_of_another_system_is_dispatched_under_the_acls(
    kafka: SecuredKafka, services: dict[str, ServiceProcess]
) -> None:
    phone = unique_phone()
    decisions = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        **kafka.options("audit"),
    )
    await decisions.start()
    try:
        await assign_from_end(decisions, MESSAGES_DECISIONS)
        request = send_request(phone)
        async with _producer(kafka, "producer") as producer:
            grant = orjson.dumps(consent_granted(phone, "event_reminder"))
            await producer.send_and_wait(CONSENT_EVENTS, grant, key=phone.encode())
            await producer.send_and_wait(
                MESSAGES_REQUESTS, orjson.dumps(request), key=phone.encode()
            )
        decision = await _decision_for(decisions, request["request_id"])
    finally:
        await decisions.stop()
    assert (decision["decision"], decision["reason"]) == ("dispatched", "consented")


async def test_a_stop_through_inbound_is_confirmed_and_blocks_the_next_request(
    kafka: SecuredKafka, services: dict[str, ServiceProcess]
) -> None:
    """Inbound's webhook publisher (FastStream), its reply consumer and its writes of
    the opt-out and of the confirmation request, each under inbound's own ACLs."""
    phone = unique_phone()
    decisions = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        **kafka.options("audit"),
    )
    await decisions.start()
    try:
        await assign_from_end(decisions, MESSAGES_DECISIONS)
        async with _producer(kafka, "producer") as producer:
            grant = orjson.dumps(consent_granted(phone, "event_reminder"))
            await producer.send_and_wait(CONSENT_EVENTS, grant, key=phone.encode())
            raw, headers = signed(text_webhook(phone[1:], "STOP"))
            async with httpx.AsyncClient(base_url=services["inbound"].url) as http:
                answer = await http.post("/webhooks/whatsapp", content=raw, headers=headers)
            assert answer.status_code == 200, answer.text
            confirmation = await _decision_of(decisions, lambda d: d.get("recipient") == phone)
            request = send_request(phone)
            await producer.send_and_wait(
                MESSAGES_REQUESTS, orjson.dumps(request), key=phone.encode()
            )
            blocked = await _decision_of(
                decisions, lambda d: d.get("request_id") == request["request_id"]
            )
    finally:
        await decisions.stop()
    assert (confirmation["decision"], confirmation["reason"]) == (
        "dispatched",
        "opt_out_confirmation",
    )
    assert (blocked["decision"], blocked["reason"]) == ("dropped", "opted_out")


async def _decision_for(consumer: AIOKafkaConsumer, request_id: str) -> dict[str, Any]:
    return await _decision_of(consumer, lambda d: d.get("request_id") == request_id)


async def _decision_of(
    consumer: AIOKafkaConsumer, matches: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    async with asyncio.timeout(60):
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    value: dict[str, Any] = orjson.loads(record.value)
                    if matches(value):
                        return value
