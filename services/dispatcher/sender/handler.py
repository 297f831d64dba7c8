"""The optional sender POSTs messages.outbound.v1 to /{version}/{phone_number_id}/messages.

At-least-once toward the WhatsApp Cloud API (docs/sender.md): each attempt is
counted in dispatcher.sends before its POST, the outcome is recorded after it,
and the offsets are committed after the outcome. A finished row is never POSTed
again; a row left 'in_flight' by a crash is re-sent (or, when configured, dead-
lettered), because the Cloud API has no idempotency key to ask it with. Only what
the gate dispatched is POSTed (services/dispatcher/sender/admission.py)."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaProducer, ConsumerRecord

from services.dispatcher import metrics
from services.dispatcher.sender.admission import Admitted, Refused, admit, lookup_ids
from services.dispatcher.sender.graph_api import GraphApi
from services.dispatcher.sender.retry_policy import AnswerClass, SendPolicy, classify, retry_cause
from services.dispatcher.sender.store import SendRow, SendStore
from shared.consent.authenticity import SigningKey
from shared.consent.platform_signals import DEFAULT_PROMOTIONAL, signal_event
from shared.contract.purposes import Purpose
from shared.contract.webhook import SIGNAL_CODES, PlatformSignal
from shared.kafka.dlq import send_to_dlq
from shared.rejection import Rejected
from shared.topics import CONSENT_EVENTS

log = structlog.get_logger(__name__)


class Sender:
    """Serves as the BatchConsumer handler: POSTs each record's body, records the outcome."""

    def __init__(
        self,
        store: SendStore,
        graph: GraphApi,
        producer: AIOKafkaProducer,
        policy: SendPolicy,
        *,
        signing_key: SigningKey,
        concurrency: int = 8,
        resend_in_flight: bool = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        promotional: Sequence[Purpose] = DEFAULT_PROMOTIONAL,
    ) -> None:
        self.store = store
        self.graph = graph
        self.producer = producer
        self.policy = policy
        self.resend_in_flight = resend_in_flight
        self.sleep = sleep
        self.promotional = promotional
        self.signing_key = signing_key
        self._slots = asyncio.Semaphore(concurrency)

    async def handle(self, batch: Sequence[ConsumerRecord]) -> None:
        # The gate inserts its decision rows before the Kafka transaction that
        # publishes their bodies commits, and this consumer reads read_committed:
        # a body the gate dispatched is never read here before its row exists, so
        # a record without a matching dispatched row was not published by the gate.
        ids = lookup_ids(batch)
        decisions, known = await asyncio.gather(
            self.store.gate_decisions(ids), self.store.rows(ids)
        )
        refused: list[Refused] = []
        firsts: set[str] = set()
        chains: dict[bytes | None, list[Admitted]] = {}
        for record in batch:
            admission = admit(record, decisions)
            if isinstance(admission, Refused):
                refused.append(admission)
                continue
            # Repeats are counted among admitted records only: a forged copy of a
            # request_id ahead of the gate's record must not hide it.
            if admission.request_id in firsts:
                metrics.SENDER_SENDS.labels("duplicate").inc()
                continue
            firsts.add(admission.request_id)
            # One recipient's messages go out in log order; recipients in parallel.
            chains.setdefault(record.key, []).append(admission)
        await self._dead_letter(refused)
        results = await asyncio.gather(
            *(self._chain(chain, known) for chain in chains.values()), return_exceptions=True
        )
        # Every chain ran to its end (no POST is cut short); a failure of the
        # database or the broker fails the batch, retried without re-sending
        # what has been recorded.
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _chain(self, chain: list[Admitted], known: dict[str, SendRow]) -> None:
        async with self._slots:
            for admitted in chain:
                await self._send(admitted, known)

    async def _send(self, admitted: Admitted, known: dict[str, SendRow]) -> None:
        record, request_id, recipient = admitted
        bound = log.bind(request_id=request_id, partition=record.partition, offset=record.offset)
        prior = known.get(request_id)
        if prior is not None and prior.status != "in_flight":
            metrics.SENDER_SENDS.labels("duplicate").inc()
            bound.info("already sent or failed, not sent again", status=prior.status)
            return
        if prior is not None:
            metrics.SENDER_IN_FLIGHT_FOUND.inc()
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
                metrics.SENDER_SENDS.labels("duplicate").inc()
                return
            result = await self.graph.post(record.value)
            answer_class = classify(result.status)
            if answer_class is AnswerClass.SENT:
                await self.store.finish(
                    request_id,
                    recipient,
                    "sent",
                    provider_message_id=result.message_id,
                    http_status=result.status,
                )
                metrics.SENDER_SENDS.labels("sent").inc()
                bound.info("sent", attempts=attempt, provider_message_id=result.message_id)
                return
            if answer_class is AnswerClass.FAIL or attempt >= self.policy.max_attempts:
                refused = answer_class is AnswerClass.FAIL
                written = datetime.fromtimestamp(record.timestamp / 1000, UTC)
                await self._record_signal(request_id, recipient, result.error_code, written)
                outcome = "rejected" if refused else "exhausted"
                why = "not retried" if refused else f"gave up after {attempt} attempts"
                failed = Rejected(reason="send_failed", detail=f"{result.error} ({why})")
                await self._fail(record, request_id, recipient, result.status, failed, outcome)
                return
            metrics.SENDER_RETRIES.labels(retry_cause(result.status)).inc()
            delay = self.policy.delay(attempt, result.retry_after)
            bound.info("retrying", attempt=attempt, error=result.error, delay=round(delay, 3))
            await self.sleep(delay)

    async def _record_signal(
        self, request_id: str, recipient: str | None, code: str | None, record_time: datetime
    ) -> None:
        """Writes what the Cloud API's refusal says of the user (131050, 131049, 131026)
        to the consent log, as inbound writes the same codes from failed statuses:
        the gate then holds or drops the person's next sends without waiting for the
        status webhook."""
        if code not in SIGNAL_CODES or recipient is None:
            return
        # Placed at the outbound record's time: a batch retried after a crash writes
        # the same event again, a redelivery rather than a second failure.
        signal = PlatformSignal(
            kind=code,
            wa_id=recipient,
            user_id=None,
            reported_at=record_time,
            where=f"send:{request_id}",
        )
        event = signal_event(signal, datetime.now(UTC), self.promotional)
        if event is None:
            return
        value = event.model_dump_json().encode()
        sent = await self.producer.send(
            CONSENT_EVENTS,
            value=value,
            key=event.subject.encode(),
            headers=[self.signing_key.header(value)],
        )
        await sent
        metrics.SENDER_PLATFORM_SIGNALS.labels(code).inc()
        log.info("platform signal recorded", request_id=request_id, code=code, type=event.type)

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
        await self._dead_letter([(record, rejected, outcome)])
        await self.store.finish(
            request_id,
            recipient,
            "failed",
            http_status=http_status,
            error=f"{rejected.reason}: {rejected.detail}",
        )

    async def _dead_letter(self, letters: Sequence[tuple[ConsumerRecord, Rejected, str]]) -> None:
        """Dead-letters each record with why, and counts it under its outcome."""
        await send_to_dlq(self.producer, [(record, rejected) for record, rejected, _ in letters])
        for record, rejected, outcome in letters:
            metrics.SENDER_SENDS.labels(outcome).inc()
            log.warning(
                "dead-lettered",
                reason=rejected.reason,
                detail=rejected.detail,
                partition=record.partition,
                offset=record.offset,
            )
