"""The optional sender: messages.outbound.v1 -> POST /{version}/{phone_number_id}/messages.

At-least-once toward the WhatsApp Cloud API (docs/sender.md): each attempt is
counted in dispatcher.sends before its POST, the outcome is recorded after it,
and the offsets are committed after the outcome. A finished row is never POSTed
again; a row left 'in_flight' by a crash is re-sent (or, when configured, dead-
lettered), because the Cloud API has no idempotency key to ask it with."""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

import httpx
import orjson
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from prometheus_client import Counter, Histogram
from pydantic import SecretStr

from services.dispatcher.send_store import SendRow, SendStore
from services.dispatcher.settings import DispatcherSettings
from shared.kafka.batch_consumer import BatchConsumer
from shared.kafka.clients import durable_producer
from shared.kafka.dlq import send_to_dlq
from shared.rejection import Rejected, decode_json_object
from shared.service_runner import close_all
from shared.topics import MESSAGES_OUTBOUND

log = structlog.get_logger(__name__)

SENDS = Counter("dispatcher_sender_sends_total", "Outbound records by outcome", ["outcome"])
REQUEST_SECONDS = Histogram(
    "dispatcher_sender_request_seconds",
    "Cloud API request latency, per attempt",
    ["result"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RETRIES = Counter("dispatcher_sender_retries_total", "Attempts followed by a retry", ["cause"])
RESUMED = Counter(
    "dispatcher_sender_in_flight_found_total",
    "Redelivered records whose previous attempt has no recorded outcome",
)


class Verdict(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAIL = "fail"


def classify(status: int | None) -> Verdict:
    """None is a transport failure (connect, timeout, reset): retried like a 5xx."""
    if status is None or status == 429 or status >= 500:
        return Verdict.RETRY
    return Verdict.SENT if 200 <= status < 300 else Verdict.FAIL


@dataclass(frozen=True)
class SendPolicy:
    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 60.0

    def delay(
        self, attempt: int, retry_after: float | None, draw: Callable[[], float] = random.random
    ) -> float:
        """The wait after the attempt-th attempt (1-based): the server's Retry-After
        when it gave one (bounded, so one answer cannot stall the consumer), else
        full jitter, which keeps many senders from retrying in step."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_max)
        return draw() * min(self.backoff_max, self.backoff_base * 2.0 ** (attempt - 1))


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """RFC 9110: delay-seconds or an HTTP-date; anything else is ignored."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - now).total_seconds(), 0.0)


def provider_message_id(payload: Any) -> str | None:
    try:
        message_id = payload["messages"][0]["id"]
    except (KeyError, IndexError, TypeError):
        return None
    return message_id if isinstance(message_id, str) else None


def graph_error(status: int | None, payload: Any, text: str) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        data = error.get("error_data")
        notes = [
            f"code {error.get('code')}",
            str(data.get("details") or "") if isinstance(data, dict) else "",
            f"fbtrace_id {error['fbtrace_id']}" if error.get("fbtrace_id") else "",
        ]
        return f"HTTP {status}: {error.get('message')} ({', '.join(n for n in notes if n)})"
    return f"HTTP {status}: {text[:500]}"


@dataclass(frozen=True)
class Attempt:
    status: int | None
    message_id: str | None = None
    retry_after: float | None = None
    error: str | None = None


class GraphApi:
    """The Cloud API's messages endpoint; the only place the token is used."""

    def __init__(
        self,
        base_url: str,
        version: str,
        phone_number_id: str,
        access_token: SecretStr,
        timeout_seconds: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.path = f"/{version}/{phone_number_id}/messages"
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {access_token.get_secret_value()}"},
            timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 5.0)),
            transport=transport,
        )

    async def post(self, body: bytes) -> Attempt:
        started = time.perf_counter()
        try:
            response = await self.client.post(
                self.path, content=body, headers={"Content-Type": "application/json"}
            )
        except httpx.TransportError as exc:
            REQUEST_SECONDS.labels("transport_error").observe(time.perf_counter() - started)
            return Attempt(None, error=f"{type(exc).__name__}: {exc}")
        REQUEST_SECONDS.labels(f"{response.status_code // 100}xx").observe(
            time.perf_counter() - started
        )
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            payload = None
        retry_after = retry_after_seconds(response.headers.get("Retry-After"), datetime.now(UTC))
        if classify(response.status_code) is Verdict.SENT:
            return Attempt(response.status_code, message_id=provider_message_id(payload))
        error = graph_error(response.status_code, payload, response.text)
        return Attempt(response.status_code, retry_after=retry_after, error=error)

    async def aclose(self) -> None:
        await self.client.aclose()


class Sender:
    """The BatchConsumer handler: POSTs each record's body, records the outcome."""

    def __init__(
        self,
        store: SendStore,
        graph: GraphApi,
        producer: AIOKafkaProducer,
        policy: SendPolicy,
        *,
        concurrency: int = 8,
        resend_in_flight: bool = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.graph = graph
        self.producer = producer
        self.policy = policy
        self.resend_in_flight = resend_in_flight
        self.sleep = sleep
        self._slots = asyncio.Semaphore(concurrency)

    async def handle(self, batch: Sequence[ConsumerRecord]) -> None:
        firsts: dict[str, ConsumerRecord] = {}
        chains: dict[bytes | None, list[ConsumerRecord]] = {}
        for record in batch:
            request_id = _request_id(record)
            if request_id is not None:
                if request_id in firsts:
                    SENDS.labels("duplicate").inc()
                    continue
                firsts[request_id] = record
            # One recipient's messages go out in log order; recipients in parallel.
            chains.setdefault(record.key, []).append(record)
        known = await self.store.rows(list(firsts))
        results = await asyncio.gather(
            *(self._chain(chain, known) for chain in chains.values()), return_exceptions=True
        )
        # Every chain ran to its end (no POST is cut short); a failure of the
        # database or the broker fails the batch, retried without re-sending
        # what has been recorded.
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _chain(self, chain: list[ConsumerRecord], known: dict[str, SendRow]) -> None:
        async with self._slots:
            for record in chain:
                await self._send(record, known)

    async def _send(self, record: ConsumerRecord, known: dict[str, SendRow]) -> None:
        request_id = _request_id(record)
        recipient = record.key.decode(errors="replace") if record.key else None
        if request_id is None:
            missing = Rejected(reason="missing_request_id", detail="no request_id header")
            await self._dead_letter(record, missing, "invalid")
            return
        bound = log.bind(request_id=request_id, partition=record.partition, offset=record.offset)
        body = decode_json_object(record.value)
        if isinstance(body, Rejected):
            await self._fail(record, request_id, recipient, None, body, "invalid")
            return
        prior = known.get(request_id)
        if prior is not None and prior.status != "in_flight":
            SENDS.labels("duplicate").inc()
            bound.info("already sent or failed, not sent again", status=prior.status)
            return
        if prior is not None:
            RESUMED.inc()
            bound.warning("previous attempt has no outcome", attempts=prior.attempts)
            if not self.resend_in_flight:
                unknown = Rejected(
                    reason="send_outcome_unknown",
                    detail=f"a sender stopped during attempt {prior.attempts}; not re-sent",
                )
                await self._fail(record, request_id, recipient, None, unknown, "unknown")
                return
        while True:
            attempt = await self.store.begin_attempt(request_id, recipient)
            if attempt is None:  # another sender finished it meanwhile
                SENDS.labels("duplicate").inc()
                return
            result = await self.graph.post(record.value)
            verdict = classify(result.status)
            if verdict is Verdict.SENT:
                await self.store.finish(
                    request_id,
                    recipient,
                    "sent",
                    provider_message_id=result.message_id,
                    http_status=result.status,
                )
                SENDS.labels("sent").inc()
                bound.info("sent", attempts=attempt, provider_message_id=result.message_id)
                return
            if verdict is Verdict.FAIL or attempt >= self.policy.max_attempts:
                refused = verdict is Verdict.FAIL
                outcome = "rejected" if refused else "exhausted"
                why = "not retried" if refused else f"gave up after {attempt} attempts"
                failed = Rejected(reason="send_failed", detail=f"{result.error} ({why})")
                await self._fail(record, request_id, recipient, result.status, failed, outcome)
                return
            RETRIES.labels(_retry_cause(result.status)).inc()
            delay = self.policy.delay(attempt, result.retry_after)
            bound.info("retrying", attempt=attempt, error=result.error, delay=round(delay, 3))
            await self.sleep(delay)

    async def _fail(
        self,
        record: ConsumerRecord,
        request_id: str,
        recipient: str | None,
        http_status: int | None,
        rejected: Rejected,
        outcome: str,
    ) -> None:
        # The dead letter first: a crash before the row is recorded re-runs this
        # record (a second dead letter at worst), never loses it.
        await self._dead_letter(record, rejected, outcome)
        await self.store.finish(
            request_id,
            recipient,
            "failed",
            http_status=http_status,
            error=f"{rejected.reason}: {rejected.detail}",
        )

    async def _dead_letter(self, record: ConsumerRecord, rejected: Rejected, outcome: str) -> None:
        await send_to_dlq(self.producer, [(record, rejected)])
        SENDS.labels(outcome).inc()
        log.warning("dead-lettered", reason=rejected.reason, detail=rejected.detail)


def _retry_cause(status: int | None) -> str:
    return "transport" if status is None else "429" if status == 429 else "5xx"


def _request_id(record: ConsumerRecord) -> str | None:
    for key, value in record.headers or ():
        if key == "request_id" and value:
            return bytes(value).decode(errors="replace")
    return None


def sender_consumer(bootstrap: str, group_id: str, offset_reset: str) -> AIOKafkaConsumer:
    """group_consumer's guarantees (manual commits after the effects, read_committed),
    with room for a batch whose sends back off: max.poll.interval of 15 minutes."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset=offset_reset,
        isolation_level="read_committed",
        max_poll_interval_ms=900_000,
    )


@dataclass
class RunningSender:
    loop: BatchConsumer
    task: "asyncio.Task[None]"
    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer
    graph: GraphApi

    @property
    def healthy(self) -> bool:
        return not self.task.done() and self.loop.healthy

    async def stop(self, drain_seconds: float = 5.0) -> None:
        # A batch in progress may finish (fewer 'in_flight' rows to resend later).
        self.loop.stop()
        await asyncio.wait({self.task}, timeout=drain_seconds)
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await close_all(self.consumer.stop, self.producer.stop, self.graph.aclose)


async def start_sender(settings: DispatcherSettings, pool: Any) -> RunningSender:
    graph = GraphApi(
        settings.graph_api_url,
        settings.graph_api_version,
        settings.phone_number_id,
        settings.access_token,
        settings.sender_timeout_seconds,
    )
    producer = durable_producer(settings.kafka_bootstrap_servers)
    consumer = sender_consumer(
        settings.kafka_bootstrap_servers,
        settings.sender_group_id,
        settings.sender_auto_offset_reset,
    )
    await producer.start()
    await consumer.start()
    consumer.subscribe([MESSAGES_OUTBOUND])
    policy = SendPolicy(
        max_attempts=settings.sender_max_attempts,
        backoff_base=settings.sender_backoff_base_seconds,
        backoff_max=settings.sender_backoff_max_seconds,
        retry_after_max=settings.sender_retry_after_max_seconds,
    )
    sender = Sender(
        SendStore(pool),
        graph,
        producer,
        policy,
        concurrency=settings.sender_concurrency,
        resend_in_flight=settings.sender_resend_in_flight,
    )
    loop = BatchConsumer(
        consumer, sender.handle, name="dispatcher-sender", max_records=settings.sender_max_batch
    )
    task = asyncio.create_task(loop.run(), name="dispatcher-sender")
    return RunningSender(loop, task, consumer, producer, graph)
