"""The sender on the real broker and database, against a local fake Graph API.

Bodies are produced to the real `messages.outbound.v1` (with the `request_id`
header the dispatcher sets) and consumed by the Sender under the same
BatchConsumer the dispatcher runs. Each run reads from the end offsets taken
before the test produced (or from an exact offset, to replay a redelivery), with
a group id of its own, so records of other tests are never POSTed. Outcomes go to
the shared `dispatcher.sends`; request_ids are fresh UUIDs, so nothing collides.
The sender POSTs only what the gate dispatched: a body it should send has its
decision row in the shared `dispatcher.decisions` first (`decided`), as the gate
records it before its Kafka transaction commits.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import SecretStr

from services.dispatcher.gate.store import DecisionRow, GateStore
from services.dispatcher.sender.graph_api import GraphApi
from services.dispatcher.sender.handler import Sender
from services.dispatcher.sender.retry_policy import SendPolicy
from services.dispatcher.sender.runner import sender_consumer, start_sender
from services.dispatcher.sender.store import SendRow, SendStore
from services.dispatcher.settings import DispatcherSettings
from shared.contract.decisions import Decision, DispatchDecision, Reason
from shared.kafka.batch_consumer import BatchConsumer
from shared.kafka.clients import durable_producer, end_offsets
from shared.topics import MESSAGES_OUTBOUND, dlq
from tests.support.fake_graph_api import FakeGraphApi, Reply
from tests.support.kafka import TopicReader
from tests.support.records import unique_phone
from tests.support.signing import DISPATCHER_KEY
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

FAST = SendPolicy(max_attempts=4, backoff_base=0.01, backoff_max=0.05, retry_after_max=5)


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraphApi]:
    with FakeGraphApi() as fake:
        yield fake


@pytest.fixture(scope="module")
async def outbound_dlq(stack: Stack) -> str:
    """messages.outbound.v1.dlq, created like its siblings when provisioning lacks it."""
    topic = dlq(MESSAGES_OUTBOUND)
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            [described] = await admin.describe_topics([MESSAGES_OUTBOUND])
            partitions = len(described["partitions"])
            response = await admin.create_topics(
                [NewTopic(topic, partitions, 1, topic_configs={"retention.ms": "-1"})]
            )
            [error] = response.to_object()["topic_errors"]
            # 36: another run created it meanwhile.
            assert error["error_code"] in (0, 36), error
    finally:
        await admin.close()
    return topic


@pytest.fixture
def store(pool: Any) -> SendStore:
    return SendStore(pool)


# ------------------------------------------------------------------ helpers


def cloud_api_body(phone: str, text: str = "Reminder: the workshop starts at 10:00") -> bytes:
    body = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": phone.lstrip("+"),
        "type": "text",
        "text": {"body": text},
    }
    return orjson.dumps(body)


async def publish(
    producer: AIOKafkaProducer, phone: str, request_id: str, body: bytes | None = None
) -> Any:
    return await producer.send_and_wait(
        MESSAGES_OUTBOUND,
        value=cloud_api_body(phone) if body is None else body,
        key=phone.encode(),
        headers=[("request_id", request_id.encode())],
    )


async def decided(
    pool: Any, phone: str, decision: Decision = Decision.DISPATCHED, body: bytes | None = None
) -> str:
    """The gate's decision on a fresh request_id, recorded as the gate records it;
    returns the request_id. A dispatched one carries `body` (by default the one
    `publish` sends) as the Cloud API body it published."""
    request_id = str(uuid.uuid4())
    dispatched = decision is Decision.DISPATCHED
    reason = Reason.CONSENTED if dispatched else Reason.OPTED_OUT
    made = DispatchDecision(
        request_id=request_id,
        recipient=phone,
        purpose="event_reminder",
        decision=decision,
        reason=reason,
        decided_at=datetime.now(UTC),
    )
    row = DecisionRow(
        request_id=request_id,
        recipient=phone,
        purpose=made.purpose,
        decision=decision.value,
        reason=reason.value,
        consent_event_id=None,
        opt_out_event_id=None,
        decided_at=made.decided_at,
        source_partition=0,
        source_offset=0,
        decision_json=made.model_dump_json().encode(),
        outbound_json=(cloud_api_body(phone) if body is None else body) if dispatched else None,
    )
    assert await GateStore(pool).record([row]) == {request_id}
    return request_id


async def log_end(stack: Stack) -> dict[TopicPartition, int]:
    reader = AIOKafkaConsumer(bootstrap_servers=stack.kafka_bootstrap)
    await reader.start()
    try:
        ends = await end_offsets(reader, MESSAGES_OUTBOUND)
    finally:
        await reader.stop()
    return {TopicPartition(MESSAGES_OUTBOUND, p): o for p, o in ends.items()}


@asynccontextmanager
async def running_sender(
    stack: Stack,
    pool: Any,
    graph: FakeGraphApi,
    start: dict[TopicPartition, int],
    policy: SendPolicy = FAST,
    **options: Any,
) -> AsyncIterator[AIOKafkaConsumer]:
    """The sender as the dispatcher wires it, but assigned from `start` offsets;
    yields its consumer (to read the group's committed offsets)."""
    group_id = f"dispatcher-sender-test-{uuid.uuid4().hex[:10]}"
    consumer = sender_consumer(stack.kafka_bootstrap, group_id, "earliest")
    dlq_producer = durable_producer(stack.kafka_bootstrap)
    api = GraphApi(graph.url, graph.version, graph.phone_number_id, SecretStr(graph.token), 5.0)
    await consumer.start()
    await dlq_producer.start()
    consumer.assign(list(start))
    for tp, offset in start.items():
        consumer.seek(tp, offset)
    sender = Sender(
        SendStore(pool), api, dlq_producer, policy, signing_key=DISPATCHER_KEY, **options
    )
    loop = BatchConsumer(consumer, sender.handle, name="test-sender")
    task = asyncio.create_task(loop.run())
    try:
        yield consumer
    finally:
        loop.stop()
        await asyncio.wait({task}, timeout=5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()
        await dlq_producer.stop()
        await api.aclose()


async def finished(store: SendStore, request_id: str, timeout: float = 30) -> SendRow:
    async with asyncio.timeout(timeout):
        while True:
            row = (await store.rows([request_id])).get(request_id)
            if row is not None and row.status != "in_flight":
                return row
            await asyncio.sleep(0.05)


def wired_settings(stack: Stack, graph: FakeGraphApi, **options: Any) -> DispatcherSettings:
    """The settings start_sender is given: the fake Graph API, a group of the test's own."""
    return DispatcherSettings(
        kafka_bootstrap_servers=stack.kafka_bootstrap,
        sender_enabled=True,
        sender_group_id=f"dispatcher-sender-test-{uuid.uuid4().hex[:10]}",
        graph_api_url=graph.url,
        phone_number_id=graph.phone_number_id,
        access_token=SecretStr(graph.token),
        signing_key=SecretStr(DISPATCHER_KEY.setting()),
        **options,
    )


async def attempted(store: SendStore, request_ids: list[str], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if len(await store.rows(request_ids)) == len(request_ids):
                return
            await asyncio.sleep(0.05)


async def committed_past(
    consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int, timeout: float = 30
) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if (await consumer.committed(tp) or 0) > offset:
                return
            await asyncio.sleep(0.05)


async def assigned(consumer: AIOKafkaConsumer, timeout: float = 30) -> None:
    """Waits for the group's assignment and resolves each starting position."""
    async with asyncio.timeout(timeout):
        while True:
            if consumer.assignment():
                break
            await asyncio.sleep(0.05)
        for tp in consumer.assignment():
            await consumer.position(tp)


# ------------------------------------------------------------------ tests


async def test_a_body_is_posted_with_the_bearer_token_and_the_provider_id_recorded(
    stack: Stack, pool: Any, store: SendStore, graph: FakeGraphApi, producer: Any, phone: str
) -> None:
    start = await log_end(stack)
    request_id = await decided(pool, phone)
    async with running_sender(stack, pool, graph, start) as consumer:
        meta = await publish(producer, phone, request_id)
        row = await finished(store, request_id)
        tp = TopicPartition(meta.topic, meta.partition)
        await committed_past(consumer, tp, meta.offset)
        assert await consumer.committed(tp) == meta.offset + 1

    [request] = graph.requests_for(phone.lstrip("+"))
    assert request.method == "POST"
    assert request.path == f"/v21.0/{graph.phone_number_id}/messages"
    assert request.headers["authorization"] == f"Bearer {graph.token}"
    assert request.headers["content-type"] == "application/json"
    assert request.raw == cloud_api_body(phone)
    assert request.status == 200
    assert row.status == "sent"
    assert row.provider_message_id == request.message_id
    assert row.provider_message_id is not None
    assert row.provider_message_id.startswith("wamid.")
    assert (row.http_status, row.attempts, row.recipient) == (200, 1, phone)
    assert row.sent_at is not None


async def test_a_429_is_retried_after_its_retry_after_then_sent(
    stack: Stack, pool: Any, store: SendStore, graph: FakeGraphApi, producer: Any, phone: str
) -> None:
    graph.script(phone.lstrip("+"), Reply(429, retry_after="1"))
    start = await log_end(stack)
    request_id = await decided(pool, phone)
    async with running_sender(stack, pool, graph, start):
        await publish(producer, phone, request_id)
        row = await finished(store, request_id)

    first, second = graph.requests_for(phone.lstrip("+"))
    assert (first.status, second.status) == (429, 200)
    # The jitter alone waits at most 10 ms here: only Retry-After explains a second.
    assert second.at - first.at >= 0.95
    assert (row.status, row.attempts, row.provider_message_id) == (
        "sent",
        2,
        second.message_id,
    )


async def test_5xx_are_retried_until_the_attempts_run_out_then_dead_lettered(
    stack: Stack,
    pool: Any,
    store: SendStore,
    graph: FakeGraphApi,
    producer: Any,
    phone: str,
    outbound_dlq: str,
) -> None:
    graph.script(phone.lstrip("+"), Reply(500), Reply(503), Reply(502), Reply(500), Reply(200))
    dead = await TopicReader(stack.kafka_bootstrap, outbound_dlq).start()
    start = await log_end(stack)
    request_id = await decided(pool, phone)
    try:
        async with running_sender(stack, pool, graph, start):
            await publish(producer, phone, request_id)
            row = await finished(store, request_id)
            await dead.wait_for(lambda rs: any(_header(r, "request_id") == request_id for r in rs))
    finally:
        await dead.stop()

    assert [r.status for r in graph.requests_for(phone.lstrip("+"))] == [500, 503, 502, 500]
    assert (row.status, row.http_status, row.attempts) == ("failed", 500, 4)
    assert row.error is not None
    assert "gave up after 4" in row.error


async def test_a_400_is_not_retried_but_recorded_failed_and_dead_lettered(
    stack: Stack,
    pool: Any,
    store: SendStore,
    graph: FakeGraphApi,
    producer: Any,
    phone: str,
    outbound_dlq: str,
) -> None:
    graph.script(phone.lstrip("+"), Reply(400, code=131026, message="Message undeliverable"))
    dead = await TopicReader(stack.kafka_bootstrap, outbound_dlq).start()
    start = await log_end(stack)
    request_id = await decided(pool, phone)
    try:
        async with running_sender(stack, pool, graph, start):
            meta = await publish(producer, phone, request_id)
            row = await finished(store, request_id)
            letters = await dead.wait_for(
                lambda rs: any(_header(r, "request_id") == request_id for r in rs)
            )
            await asyncio.sleep(0.5)  # room for a retry that must not happen
    finally:
        await dead.stop()

    [letter] = [r for r in letters if _header(r, "request_id") == request_id]
    assert [r.status for r in graph.requests_for(phone.lstrip("+"))] == [400]
    assert (row.status, row.http_status, row.attempts, row.sent_at) == ("failed", 400, 1, None)
    assert row.error is not None
    assert "131026" in row.error
    assert "Message undeliverable" in row.error
    assert (letter.key, letter.value) == (phone.encode(), cloud_api_body(phone))
    assert _header(letter, "error.reason") == "send_failed"
    assert "131026" in (_header(letter, "error.detail") or "")
    assert _header(letter, "source.topic") == MESSAGES_OUTBOUND
    assert _header(letter, "source.partition") == str(meta.partition)
    assert _header(letter, "source.offset") == str(meta.offset)


async def test_a_redelivered_record_is_not_posted_twice(
    stack: Stack, pool: Any, store: SendStore, graph: FakeGraphApi, producer: Any, phone: str
) -> None:
    start = await log_end(stack)
    request_id = await decided(pool, phone)
    async with running_sender(stack, pool, graph, start):
        meta = await publish(producer, phone, request_id)
        sent = await finished(store, request_id)

    # As if the offsets had never been committed: another sender reads it again.
    tp = TopicPartition(meta.topic, meta.partition)
    async with running_sender(stack, pool, graph, {tp: meta.offset}) as again:
        await committed_past(again, tp, meta.offset)

    assert len(graph.requests_for(phone.lstrip("+"))) == 1
    assert (await store.rows([request_id]))[request_id] == sent


async def test_a_record_left_in_flight_by_a_crash_is_sent_again_once(
    stack: Stack, pool: Any, store: SendStore, graph: FakeGraphApi, producer: Any, phone: str
) -> None:
    """The at-least-once boundary (docs/sender.md): a sender that died between its
    POST and the outcome leaves an 'in_flight' row; the next one sends again."""
    request_id = await decided(pool, phone)
    assert await store.begin_attempt(request_id, phone) == 1
    start = await log_end(stack)
    async with running_sender(stack, pool, graph, start):
        await publish(producer, phone, request_id)
        row = await finished(store, request_id)

    assert len(graph.requests_for(phone.lstrip("+"))) == 1
    assert (row.status, row.attempts) == ("sent", 2)


async def test_a_body_in_an_aborted_transaction_is_never_posted(
    stack: Stack, pool: Any, store: SendStore, graph: FakeGraphApi, producer: Any
) -> None:
    aborted_phone, committed_phone = unique_phone(), unique_phone()
    start = await log_end(stack)
    transactional = durable_producer(
        stack.kafka_bootstrap, transactional_id=f"sender-test-{uuid.uuid4().hex[:8]}"
    )
    await transactional.start()
    try:
        # Decided like the committed one: only the abort keeps it from being sent.
        aborted_id = await decided(pool, aborted_phone)
        await transactional.begin_transaction()
        await publish(transactional, aborted_phone, aborted_id)
        await transactional.abort_transaction()
        request_id = await decided(pool, committed_phone)
        async with transactional.transaction():
            await publish(transactional, committed_phone, request_id)
    finally:
        await transactional.stop()
    async with running_sender(stack, pool, graph, start):
        await finished(store, request_id)
        await asyncio.sleep(0.3)

    assert graph.requests_for(aborted_phone.lstrip("+")) == []
    assert len(graph.requests_for(committed_phone.lstrip("+"))) == 1


# ------------------------------------------------------------------ only what the gate dispatched


async def refused(
    stack: Stack,
    pool: Any,
    graph: FakeGraphApi,
    producer: Any,
    outbound_dlq: str,
    phone: str,
    request_id: str,
    body: bytes | None = None,
) -> Any:
    """Publishes a record and runs the sender over it; returns its dead letter once
    the sender has committed past the record (its batch did not fail)."""
    dead = await TopicReader(stack.kafka_bootstrap, outbound_dlq).start()
    start = await log_end(stack)
    try:
        async with running_sender(stack, pool, graph, start) as consumer:
            meta = await publish(producer, phone, request_id, body)
            letters = await dead.wait_for(
                lambda rs: any(_header(r, "request_id") == request_id for r in rs)
            )
            await committed_past(consumer, TopicPartition(meta.topic, meta.partition), meta.offset)
    finally:
        await dead.stop()
    [letter] = [r for r in letters if _header(r, "request_id") == request_id]
    assert (letter.key, _header(letter, "source.offset")) == (phone.encode(), str(meta.offset))
    assert _header(letter, "error.reason") == "no_dispatch_decision"
    return letter


async def test_a_record_without_a_decision_is_dead_lettered_and_not_posted(
    stack: Stack,
    pool: Any,
    store: SendStore,
    graph: FakeGraphApi,
    producer: Any,
    phone: str,
    outbound_dlq: str,
) -> None:
    request_id = str(uuid.uuid4())
    letter = await refused(stack, pool, graph, producer, outbound_dlq, phone, request_id)

    assert "no decision" in (_header(letter, "error.detail") or "")
    assert letter.value == cloud_api_body(phone)
    assert graph.requests_for(phone.lstrip("+")) == []
    assert await store.rows([request_id]) == {}


async def test_a_record_whose_request_was_dropped_is_dead_lettered_and_not_posted(
    stack: Stack,
    pool: Any,
    store: SendStore,
    graph: FakeGraphApi,
    producer: Any,
    phone: str,
    outbound_dlq: str,
) -> None:
    request_id = await decided(pool, phone, Decision.DROPPED)
    letter = await refused(stack, pool, graph, producer, outbound_dlq, phone, request_id)

    assert "is dropped (opted_out)" in (_header(letter, "error.detail") or "")
    assert graph.requests_for(phone.lstrip("+")) == []
    assert await store.rows([request_id]) == {}


async def test_a_record_for_another_recipient_than_the_dispatched_one_is_not_posted(
    stack: Stack,
    pool: Any,
    store: SendStore,
    graph: FakeGraphApi,
    producer: Any,
    phone: str,
    outbound_dlq: str,
) -> None:
    other = unique_phone()
    request_id = await decided(pool, phone)
    letter = await refused(stack, pool, graph, producer, outbound_dlq, other, request_id)

    assert "another recipient" in (_header(letter, "error.detail") or "")
    assert graph.requests_for(other.lstrip("+")) == []
    assert graph.requests_for(phone.lstrip("+")) == []
    assert await store.rows([request_id]) == {}


async def test_another_body_under_a_dispatched_request_id_and_recipient_is_not_posted(
    stack: Stack,
    pool: Any,
    store: SendStore,
    graph: FakeGraphApi,
    producer: Any,
    phone: str,
    outbound_dlq: str,
) -> None:
    request_id = await decided(pool, phone)
    forged = cloud_api_body(phone, "Your account is locked: pay at example.com")
    letter = await refused(stack, pool, graph, producer, outbound_dlq, phone, request_id, forged)

    assert "another body" in (_header(letter, "error.detail") or "")
    assert letter.value == forged
    assert graph.requests_for(phone.lstrip("+")) == []
    assert await store.rows([request_id]) == {}


async def test_a_dispatched_record_behind_a_forged_one_in_its_partition_is_posted(
    stack: Stack,
    pool: Any,
    store: SendStore,
    graph: FakeGraphApi,
    producer: Any,
    phone: str,
    outbound_dlq: str,
) -> None:
    forged_id, request_id = str(uuid.uuid4()), await decided(pool, phone)
    dead = await TopicReader(stack.kafka_bootstrap, outbound_dlq).start()
    start = await log_end(stack)
    try:
        async with running_sender(stack, pool, graph, start):
            forged = await publish(producer, phone, forged_id, cloud_api_body(phone, "Pay now"))
            meta = await publish(producer, phone, request_id)
            row = await finished(store, request_id)
            letters = await dead.wait_for(
                lambda rs: any(_header(r, "request_id") == forged_id for r in rs)
            )
    finally:
        await dead.stop()

    assert (forged.partition, forged.offset + 1) == (meta.partition, meta.offset)
    [request] = graph.requests_for(phone.lstrip("+"))
    assert request.raw == cloud_api_body(phone)
    assert (row.status, row.provider_message_id) == ("sent", request.message_id)
    [letter] = [r for r in letters if _header(r, "request_id") == forged_id]
    assert _header(letter, "error.reason") == "no_dispatch_decision"


async def test_a_forged_copy_of_a_request_id_does_not_keep_the_dispatched_one_from_going_out(
    stack: Stack, pool: Any, store: SendStore, graph: FakeGraphApi, producer: Any, phone: str
) -> None:
    """Refused records leave no row in dispatcher.sends: a row under the request_id
    would make the sender skip the gate's record as already done."""
    request_id = await decided(pool, phone)
    start = await log_end(stack)
    async with running_sender(stack, pool, graph, start) as consumer:
        forged = await publish(producer, phone, request_id, cloud_api_body(phone, "Pay now"))
        tp = TopicPartition(forged.topic, forged.partition)
        await committed_past(consumer, tp, forged.offset)  # in a batch of its own
        await publish(producer, phone, request_id)
        row = await finished(store, request_id)

    [request] = graph.requests_for(phone.lstrip("+"))
    assert request.raw == cloud_api_body(phone)
    assert row.status == "sent"


def _header(record: Any, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode()
    return None


async def test_the_wired_sender_starts_at_the_log_end_and_commits_its_group(
    stack: Stack, pool: Any, store: SendStore, graph: FakeGraphApi, producer: Any
) -> None:
    """start_sender as the dispatcher calls it: a fresh group never replays what was
    on the topic before it joined, and it commits what it sent."""
    before, after = unique_phone(), unique_phone()
    await publish(producer, before, await decided(pool, before))
    sender = await start_sender(wired_settings(stack, graph), pool)
    try:
        await assigned(sender.consumer)  # "latest" is resolved before we produce
        request_id = await decided(pool, after)
        meta = await publish(producer, after, request_id)
        row = await finished(store, request_id)
        await committed_past(
            sender.consumer, TopicPartition(meta.topic, meta.partition), meta.offset
        )
        assert sender.healthy
    finally:
        await sender.stop()

    assert row.status == "sent"
    assert graph.requests_for(before.lstrip("+")) == []
    assert len(graph.requests_for(after.lstrip("+"))) == 1


async def test_partitions_change_hands_only_after_the_sends_in_flight_are_recorded(
    stack: Stack, pool: Any, store: SendStore, graph: FakeGraphApi, producer: Any
) -> None:
    """Sender A is waiting on Graph for a batch when sender B joins the group. B must
    not get A's partitions before A has recorded the sends and committed: it would
    read the records again, find them in flight and post them a second time (or,
    not resending, record as failed what A is sending)."""
    phones = [unique_phone() for _ in range(9)]  # over every partition
    for phone in phones:
        graph.script(phone.lstrip("+"), Reply(200, delay=8.0))  # past a rebalance
    settings = wired_settings(stack, graph, sender_timeout_seconds=30.0, sender_concurrency=9)
    first = await start_sender(settings, pool)
    senders = [first]
    try:
        await assigned(first.consumer)
        # The group commits on every partition first: a member assigned one then
        # starts at the committed offset, not at the log end.
        for _ in range(9):
            warm_up = unique_phone()
            meta = await publish(producer, warm_up, await decided(pool, warm_up))
            tp = TopicPartition(meta.topic, meta.partition)
            await committed_past(first.consumer, tp, meta.offset)
        request_ids = [await decided(pool, phone) for phone in phones]
        await asyncio.gather(  # at once, so that A takes them in one batch
            *(publish(producer, p, r) for p, r in zip(phones, request_ids, strict=True))
        )
        await attempted(store, request_ids)  # every POST of the batch is under way
        senders.append(await start_sender(settings, pool))  # B joins: a rebalance begins
        rows = [await finished(store, request_id) for request_id in request_ids]
        await asyncio.sleep(3)  # a second POST (unscripted: answered at once) by now
    finally:
        for sender in senders:
            await sender.stop()

    assert [row.status for row in rows] == ["sent"] * len(phones)
    assert [len(graph.requests_for(p.lstrip("+"))) for p in phones] == [1] * len(phones)


def test_enabling_the_sender_without_credentials_is_refused() -> None:
    with pytest.raises(ValueError, match="DISPATCHER_PHONE_NUMBER_ID"):
        DispatcherSettings(sender_enabled=True, phone_number_id="", access_token=SecretStr(""))
