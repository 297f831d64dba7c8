"""The sender's retry policy: which answers are retried, how long it waits, what
it records. Pure functions first; then the send loop over an in-memory store, a
fake producer and httpx's mock transport (no network, no broker). The gate's part
is played in memory too: every record handed to the sender was dispatched."""

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Literal

import httpx
import orjson
import pytest
from aiokafka import ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from services.dispatcher.sender.admission import GateDecision, request_id_of
from services.dispatcher.sender.graph_api import GraphApi
from services.dispatcher.sender.handler import Sender
from services.dispatcher.sender.retry_policy import (
    AnswerClass,
    SendPolicy,
    classify,
    graph_error,
    provider_message_id,
    retry_after_seconds,
)
from services.dispatcher.sender.store import SendRow
from tests.support.signing import DISPATCHER_KEY, TRUST

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

# ---------------------------------------------------------------- which answers


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, AnswerClass.SENT),
        (201, AnswerClass.SENT),
        (429, AnswerClass.RETRY),
        (500, AnswerClass.RETRY),
        (502, AnswerClass.RETRY),
        (503, AnswerClass.RETRY),
        (504, AnswerClass.RETRY),
        (None, AnswerClass.RETRY),  # connect error, timeout, reset
        (400, AnswerClass.FAIL),
        (401, AnswerClass.FAIL),
        (403, AnswerClass.FAIL),
        (404, AnswerClass.FAIL),
        (408, AnswerClass.FAIL),
        (422, AnswerClass.FAIL),
        (301, AnswerClass.FAIL),
    ],
)
def test_only_429_5xx_and_transport_failures_are_retried(
    status: int | None, verdict: AnswerClass
) -> None:
    assert classify(status) is verdict


# ---------------------------------------------------------------- how long


@given(attempt=st.integers(1, 40), draw=st.floats(0, 1, exclude_max=True))
def test_backoff_is_full_jitter_under_an_exponential_cap(attempt: int, draw: float) -> None:
    policy = SendPolicy(backoff_base=0.5, backoff_max=30.0)
    ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
    assert 0 <= policy.delay(attempt, None, lambda: draw) <= ceiling


def test_backoff_doubles_until_the_cap() -> None:
    policy = SendPolicy(backoff_base=0.5, backoff_max=5.0)
    ceilings = [policy.delay(n, None, lambda: 1.0) for n in range(1, 7)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_full_jitter_can_retry_at_once() -> None:
    assert SendPolicy().delay(3, None, lambda: 0.0) == 0.0


def test_retry_after_is_honoured_instead_of_the_jitter() -> None:
    policy = SendPolicy(backoff_base=0.01, backoff_max=0.01, retry_after_max=60)
    assert policy.delay(1, 7.0, lambda: 0.0) == 7.0


def test_a_retry_after_longer_than_the_bound_waits_the_bound() -> None:
    assert SendPolicy(retry_after_max=60).delay(1, 3600.0) == 60.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),  # in the past
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_delay_seconds_or_an_http_date(
    header: str | None, seconds: float | None
) -> None:
    assert retry_after_seconds(header, NOW) == seconds


# ---------------------------------------------------------------- what is recorded


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"messaging_product": "whatsapp", "messages": [{"id": "wamid.X"}]}, "wamid.X"),
        ({"messages": []}, None),
        ({"messages": [{}]}, None),
        ({"messages": [{"id": 7}]}, None),
        ({}, None),
        (None, None),
        ([1], None),
    ],
)
def test_the_provider_message_id_is_messages_0_id(payload: Any, expected: str | None) -> None:
    assert provider_message_id(payload) == expected


def test_a_graph_error_keeps_its_code_details_and_trace() -> None:
    payload = {
        "error": {
            "message": "(#131026) Message undeliverable",
            "code": 131026,
            "error_data": {"details": "Receiver is incapable"},
            "fbtrace_id": "AbC",
        }
    }
    text = graph_error(400, payload, "")
    assert text.startswith("HTTP 400: (#131026) Message undeliverable")
    assert "code 131026" in text
    assert "Receiver is incapable" in text
    assert "fbtrace_id AbC" in text


def test_a_non_graph_error_keeps_the_start_of_the_body() -> None:
    assert (
        graph_error(502, None, "<html>Bad Gateway</html>") == "HTTP 502: <html>Bad Gateway</html>"
    )


# ---------------------------------------------------------------- the send loop


class MemoryStore:
    """dispatcher.sends in memory, with the same finished-is-final rule; and the
    gate's decisions the sender reads."""

    def __init__(self) -> None:
        self.rows_by_id: dict[str, dict[str, Any]] = {}
        self.decisions_by_id: dict[str, GateDecision] = {}

    async def gate_decisions(self, request_ids: list[str]) -> dict[str, GateDecision]:
        return {i: self.decisions_by_id[i] for i in request_ids if i in self.decisions_by_id}

    def dispatch(self, record: ConsumerRecord) -> None:
        """What the gate records before its outputs can be read: its decision."""
        request_id = request_id_of(record)
        if request_id is not None:
            recipient = record.key.decode() if record.key else None
            self.decisions_by_id[request_id] = GateDecision(
                "dispatched", "consented", recipient, orjson.loads(record.value)
            )

    async def rows(self, request_ids: list[str]) -> dict[str, SendRow]:
        return {
            i: SendRow.model_validate(self.rows_by_id[i])
            for i in request_ids
            if i in self.rows_by_id
        }

    async def begin_attempt(self, request_id: str, recipient: str | None) -> int | None:
        row = self.rows_by_id.setdefault(request_id, _row(request_id, recipient, "in_flight", 0))
        if row["status"] != "in_flight":
            return None
        row["attempts"] += 1
        return int(row["attempts"])

    async def finish(
        self,
        request_id: str,
        recipient: str | None,
        status: Literal["sent", "failed"],
        **outcome: Any,
    ) -> bool:
        row = self.rows_by_id.setdefault(request_id, _row(request_id, recipient, "in_flight", 0))
        if row["status"] != "in_flight":
            return False
        row.update(status=status, **outcome)
        return True


def _row(request_id: str, recipient: str | None, status: str, attempts: int) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "recipient": recipient,
        "status": status,
        "provider_message_id": None,
        "http_status": None,
        "error": None,
        "attempts": attempts,
        "first_attempt_at": NOW,
        "updated_at": NOW,
        "sent_at": None,
    }


class MemoryProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, dict[str, bytes]]] = []

    async def send(
        self, topic: str, *, value: bytes | None, key: bytes | None, headers: Any
    ) -> "asyncio.Future[None]":
        self.sent.append((topic, key, value, dict(headers)))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class ScriptedGraph:
    """httpx's mock transport answering from a list; records each request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else _ok()
        if isinstance(answer, Exception):
            raise answer
        return answer


def _ok(message_id: str = "wamid.OK") -> httpx.Response:
    return httpx.Response(
        200, json={"messaging_product": "whatsapp", "messages": [{"id": message_id}]}
    )


def _error(status: int, code: int = 100, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"message": f"error {code}", "code": code}}, headers=headers
    )


def _record(request_id: str | None, offset: int = 0, to: str = "79161234567") -> ConsumerRecord:
    body = {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": "hi"}}
    headers = [("request_id", request_id.encode())] if request_id else []
    return ConsumerRecord(
        "messages.outbound.v1", 0, offset, 0, 0, f"+{to}".encode(), orjson.dumps(body), None, 0, 0,
        headers,
    )  # fmt: skip


class DispatchedFirst:
    """The sender behind the gate: each record handed over was dispatched."""

    def __init__(self, store: MemoryStore, sender: Sender) -> None:
        self.store = store
        self.sender = sender

    async def handle(self, batch: list[ConsumerRecord]) -> None:
        for record in batch:
            self.store.dispatch(record)
        await self.sender.handle(batch)


class Harness:
    def __init__(self, graph: ScriptedGraph, **sender_options: Any) -> None:
        self.graph = graph
        self.store = MemoryStore()
        self.producer = MemoryProducer()
        self.slept: list[float] = []
        api = GraphApi(
            "https://graph.example",
            "v21.0",
            "123",
            SecretStr("secret-token"),
            transport=httpx.MockTransport(graph),
        )

        async def sleep(seconds: float) -> None:
            self.slept.append(seconds)

        # The sender alone, for tests that record the gate's decisions themselves.
        self.sender_alone = Sender(
            self.store,  # type: ignore[arg-type]
            api,
            self.producer,
            SendPolicy(max_attempts=sender_options.pop("max_attempts", 6), backoff_base=0.5),
            sleep=sleep,
            signing_key=DISPATCHER_KEY,
            **sender_options,
        )
        self.sender = DispatchedFirst(self.store, self.sender_alone)

    def row(self, request_id: str) -> dict[str, Any]:
        return self.store.rows_by_id[request_id]


async def test_429_then_5xx_then_200_is_sent_with_the_provider_id() -> None:
    h = Harness(
        ScriptedGraph(_error(429, 130429, **{"Retry-After": "2"}), _error(503), _ok("wamid.A"))
    )
    await h.sender.handle([_record("r1")])
    assert len(h.graph.requests) == 3
    assert h.slept[0] == 2.0  # the server's Retry-After
    assert 0 <= h.slept[1] <= 1.0  # full jitter after the second attempt
    row = h.row("r1")
    assert (row["status"], row["attempts"], row["provider_message_id"]) == ("sent", 3, "wamid.A")
    assert h.producer.sent == []


async def test_each_post_carries_the_bearer_token_to_the_messages_path() -> None:
    h = Harness(ScriptedGraph())
    await h.sender.handle([_record("r1")])
    request = h.graph.requests[0]
    assert request.method == "POST"
    assert str(request.url) == "https://graph.example/v21.0/123/messages"
    assert request.headers["authorization"] == "Bearer secret-token"
    assert request.headers["content-type"] == "application/json"
    assert orjson.loads(request.content)["to"] == "79161234567"


async def test_a_400_is_not_retried_and_goes_to_the_dlq() -> None:
    h = Harness(ScriptedGraph(_error(400, 132000)))
    record = _record("r1")
    await h.sender.handle([record])
    assert len(h.graph.requests) == 1
    assert h.slept == []
    row = h.row("r1")
    assert (row["status"], row["http_status"], row["attempts"]) == ("failed", 400, 1)
    assert "132000" in row["error"]
    [(topic, key, value, headers)] = h.producer.sent
    assert (topic, key, value) == ("messages.outbound.v1.dlq", record.key, record.value)
    assert headers["error.reason"] == b"send_failed"
    assert headers["request_id"] == b"r1"
    assert headers["source.offset"] == b"0"


async def test_transport_failures_are_retried_until_the_attempts_run_out() -> None:
    failures = [httpx.ConnectError("refused") for _ in range(3)]
    h = Harness(ScriptedGraph(*failures), max_attempts=3)
    await h.sender.handle([_record("r1")])
    assert len(h.graph.requests) == 3
    assert len(h.slept) == 2
    row = h.row("r1")
    assert (row["status"], row["http_status"], row["attempts"]) == ("failed", None, 3)
    assert "ConnectError" in row["error"]
    assert h.producer.sent[0][3]["error.reason"] == b"send_failed"


async def test_a_finished_request_id_is_never_posted_again() -> None:
    h = Harness(ScriptedGraph())
    await h.sender.handle([_record("r1", offset=0)])
    await h.sender.handle([_record("r1", offset=0), _record("r1", offset=5)])
    assert len(h.graph.requests) == 1


async def test_a_request_left_in_flight_by_a_crash_is_resent_and_counted() -> None:
    h = Harness(ScriptedGraph())
    h.store.rows_by_id["r1"] = _row("r1", "+79161234567", "in_flight", 2)
    await h.sender.handle([_record("r1")])
    assert len(h.graph.requests) == 1
    assert (h.row("r1")["status"], h.row("r1")["attempts"]) == ("sent", 3)


async def test_at_most_once_mode_dead_letters_a_request_left_in_flight() -> None:
    h = Harness(ScriptedGraph(), resend_in_flight=False)
    h.store.rows_by_id["r1"] = _row("r1", "+79161234567", "in_flight", 1)
    await h.sender.handle([_record("r1")])
    assert h.graph.requests == []
    assert h.row("r1")["status"] == "failed"
    assert h.producer.sent[0][3]["error.reason"] == b"send_outcome_unknown"


async def test_a_record_without_request_id_is_dead_lettered_unsent() -> None:
    h = Harness(ScriptedGraph())
    await h.sender.handle([_record(None)])
    assert h.graph.requests == []
    assert h.producer.sent[0][3]["error.reason"] == b"missing_request_id"


async def test_one_recipients_messages_keep_their_order() -> None:
    h = Harness(ScriptedGraph(_error(500), _ok("wamid.1"), _ok("wamid.2")))
    await h.sender.handle([_record("first", offset=0), _record("second", offset=1)])
    ids = [orjson.loads(r.content)["to"] for r in h.graph.requests]
    assert ids == ["79161234567"] * 3
    assert h.row("first")["provider_message_id"] == "wamid.1"
    assert h.row("second")["provider_message_id"] == "wamid.2"


# ---------------------------------------------------------------- only what the gate dispatched


async def test_a_record_the_gate_never_decided_is_dead_lettered_unsent_and_unrecorded() -> None:
    h = Harness(ScriptedGraph())
    await h.sender_alone.handle([_record("forged")])
    assert h.graph.requests == []
    assert h.store.rows_by_id == {}
    [(topic, _, _, headers)] = h.producer.sent
    assert topic == "messages.outbound.v1.dlq"
    assert headers["error.reason"] == b"no_dispatch_decision"
    assert b"no decision" in headers["error.detail"]


async def test_a_forged_copy_ahead_of_the_gates_record_does_not_hide_it() -> None:
    h = Harness(ScriptedGraph())
    real = _record("r1", offset=1)
    h.store.dispatch(real)
    forged = ConsumerRecord(
        real.topic, 0, 0, 0, 0, real.key, b'{"to": "79161234567", "text": {"body": "pay"}}', None,
        0, 0, real.headers,
    )  # fmt: skip
    await h.sender_alone.handle([forged, real])
    [request] = h.graph.requests
    assert request.content == real.value
    assert h.row("r1")["status"] == "sent"
    [(_, _, value, headers)] = h.producer.sent
    assert value == forged.value
    assert headers["error.reason"] == b"no_dispatch_decision"


@pytest.mark.parametrize(
    ("code", "kind", "purposes"),
    [
        (131050, "MarketingStopped", ["educational_material"]),
        (131049, "DeliveryLimited", None),
        (131026, "DeliveryFailed", None),
    ],
)
async def test_a_refusal_with_a_platform_code_is_written_to_the_consent_log_before_the_dlq(
    code: int, kind: str, purposes: list[str] | None
) -> None:
    h = Harness(ScriptedGraph(_error(400, code)))
    record = _record("r1")
    await h.sender.handle([record])
    (signal_topic, signal_key, signal, signed), (dlq_topic, *_) = h.producer.sent
    assert (signal_topic, dlq_topic) == ("consent.events.v1", "messages.outbound.v1.dlq")
    # Signed as inbound signs the same codes from statuses: the readers believe it.
    assert TRUST.keyring.problem(signal or b"", signed.items()) is None
    event = orjson.loads(signal or b"")
    assert signal_key == event["subject"].encode() == record.key
    assert (event["type"], event["source"], event["purposes"]) == (
        kind,
        "whatsapp_status",
        purposes,
    )
    assert event["evidence"] == {"webhook": "send:r1", "reported": str(code)}
    # Refused again after a crash: the same event, a redelivery for the projector.
    again = Harness(ScriptedGraph(_error(400, code)))
    await again.sender.handle([record])
    assert again.producer.sent[0][2] == signal
