"""An erasure request is refused to whoever asks, with the reason, whenever the record
would not be applied; and what the consent API answers names what failed: on a fake
producer, no broker needed (docs/erasure.md section 5; docs/contract.md section 6)."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from structlog.testing import capture_logs

from services.consent import erasure_request
from services.consent.access import AccessLog
from services.consent.api import subjects_router
from services.consent.erasure_requests import erasure_requested
from services.consent.store import ConsentStore
from services.consent.tokens import Tokens, new_token, token_hash
from shared.contract.event_parsing import parse_consent_event
from shared.contract.events import ERASURE_API, ERASURE_CLI, ConsentEvent, EventType
from shared.contract.limits import MAX_EVIDENCE_BYTES
from shared.http_ops import service_apps
from shared.rejection import RejectedError
from shared.topics import CONSENT_EVENTS
from tests.support.signing import PSEUDONYMS

PHONE = "+79161234567"
AT = datetime(2026, 3, 1, 12, tzinfo=UTC)
# Just over the limit by itself: the rest of the evidence only adds to it.
OVERSIZED = "x" * (MAX_EVIDENCE_BYTES + 1)
ERASER = new_token()


class FakeProducer:
    """Keeps what was sent, or raises `fails` at the send."""

    def __init__(self, fails: BaseException | None = None) -> None:
        self.fails = fails
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.started = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> None:
        if self.fails is not None:
            raise self.fails
        self.sent.append((topic, value, key))


def _accepted(value: bytes) -> ConsentEvent:
    parsed = parse_consent_event(value)
    assert isinstance(parsed, ConsentEvent), parsed
    return parsed


# The builder both write with.


@pytest.mark.parametrize("source", [ERASURE_API, ERASURE_CLI])
def test_the_record_built_is_the_one_the_projector_accepts(source: str) -> None:
    record = erasure_requested(PHONE[1:], source, "privacy-desk", "ticket DSR-118", AT)

    parsed = _accepted(record.value)
    assert parsed == record.event
    assert (parsed.type, parsed.subject, parsed.source) == (
        EventType.ERASURE_REQUESTED,
        PHONE,
        source,
    )
    assert parsed.evidence == {"requested_by": "privacy-desk", "reason": "ticket DSR-118"}


@pytest.mark.parametrize(
    "requested_by",
    [
        OVERSIZED,
        # Under the limit in characters, over it once JSON escapes each one (6 bytes).
        "\x01" * (MAX_EVIDENCE_BYTES // 5),
    ],
    ids=["long", "escaped"],
)
@pytest.mark.parametrize("source", [ERASURE_API, ERASURE_CLI])
def test_evidence_over_the_event_limit_is_refused_as_the_projector_would(
    source: str, requested_by: str
) -> None:
    with pytest.raises(RejectedError) as refused:
        erasure_requested(PHONE, source, requested_by, None, AT)

    assert refused.value.reason == "too_large"
    assert str(MAX_EVIDENCE_BYTES) in refused.value.detail


def test_evidence_just_within_the_limit_is_accepted() -> None:
    record = erasure_requested(PHONE, ERASURE_CLI, "x" * (MAX_EVIDENCE_BYTES - 100), None, AT)

    assert _accepted(record.value).evidence is not None


@pytest.mark.parametrize("text", ["\ud800", "caf\udce9"], ids=["lone-surrogate", "argv-bytes"])
def test_text_that_is_not_utf8_is_refused_not_raised(text: str) -> None:
    with pytest.raises(RejectedError) as refused:
        erasure_requested(PHONE, ERASURE_CLI, text, None, AT)
    assert refused.value.reason == "invalid_json"

    with pytest.raises(RejectedError) as refused:
        erasure_requested(PHONE, ERASURE_CLI, "privacy-desk", text, AT)
    assert refused.value.reason == "invalid_json"


def test_an_unusable_identifier_is_refused_with_its_reason() -> None:
    with pytest.raises(RejectedError) as refused:
        erasure_requested("not-a-number", ERASURE_CLI, "privacy-desk", None, AT)

    assert refused.value.reason == "invalid_phone"


# The operator's command.


@pytest.fixture
def producers(monkeypatch: pytest.MonkeyPatch) -> list[FakeProducer]:
    made: list[FakeProducer] = []

    def durable_producer(bootstrap: str) -> FakeProducer:
        made.append(FakeProducer())
        return made[-1]

    monkeypatch.setattr(erasure_request, "durable_producer", durable_producer)
    return made


def _erase(*args: str) -> int:
    return erasure_request.main([*args, "--bootstrap", "127.0.0.1:1"])


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ((PHONE, "--requested-by", OVERSIZED), "too_large"),
        ((PHONE, "--requested-by", "caf\udce9"), "invalid_json"),
        (("not-a-number", "--requested-by", "privacy-desk"), "invalid_phone"),
    ],
    ids=["requested-by-too-large", "not-utf8", "bad-identifier"],
)
def test_the_command_refuses_with_status_2_before_connecting(
    producers: list[FakeProducer],
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    reason: str,
) -> None:
    code = _erase(*args)

    printed = capsys.readouterr()
    assert code == 2
    assert f"refused ({reason})" in printed.err
    assert printed.out == ""
    assert producers == []


def test_the_command_reports_the_event_it_recorded(
    producers: list[FakeProducer], capsys: pytest.CaptureFixture[str]
) -> None:
    code = _erase(PHONE[1:], "--requested-by", "privacy-desk", "--reason", "ticket DSR-7")

    assert code == 0
    [producer] = producers
    [(topic, value, key)] = producer.sent
    event = _accepted(value)
    assert (topic, key) == (CONSENT_EVENTS, PHONE.encode())
    assert event.source == ERASURE_CLI
    assert f"event {event.event_id}" in capsys.readouterr().out
    assert not producer.started


# The consent API's endpoint, in the app the service builds.


def _tokens(name: str) -> Tokens:
    table = {name: {"sha256": token_hash(ERASER), "scopes": ["consent:erasure"]}}
    return Tokens.parse(orjson.dumps(table).decode())


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
def principal() -> str:
    return "privacy-desk"


@pytest.fixture
async def client(producer: FakeProducer, principal: str) -> AsyncIterator[httpx.AsyncClient]:
    async def readiness() -> dict[str, bool]:
        return {}

    app, _ = service_apps("consent", None, readiness, ops_on_public_port=False)
    # As the service's lifespan does; store and access log serve only the reads.
    app.include_router(
        subjects_router(
            ConsentStore(None), _tokens(principal), AccessLog(None, PSEUDONYMS), producer
        )
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://consent",
        headers={"Authorization": f"Bearer {ERASER}"},
    ) as http:
        yield http


async def _post(client: httpx.AsyncClient, body: bytes, identifier: str = PHONE) -> Any:
    return await client.post(
        f"/v1/subjects/{identifier}/erasure",
        content=body,
        headers={"Content-Type": "application/json"},
    )


async def test_a_request_is_recorded_as_the_projector_accepts_it(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    answer = await _post(client, b'{"reason": "ticket DSR-118"}')

    assert answer.status_code == 202
    [(topic, value, key)] = producer.sent
    event = _accepted(value)
    assert (topic, key, event.event_id) == (
        CONSENT_EVENTS,
        PHONE.encode(),
        answer.json()["event_id"],
    )
    assert event.evidence == {"requested_by": "privacy-desk", "reason": "ticket DSR-118"}


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"reason": "\\ud800"}', "body.reason"),
        (b'{"reason": "ticket \\udcff DSR-7"}', "body.reason"),
        (b'{"why": "\\ud800"}', "body.why"),
        (b'{"\\ud800": "x"}', "body"),
        (b'{"reason": "\\ud800', "body"),
    ],
    ids=["reason", "reason-inside", "unknown-field", "key", "unterminated"],
)
async def test_a_lone_surrogate_is_refused_with_422_and_why(
    client: httpx.AsyncClient, producer: FakeProducer, body: bytes, where: str
) -> None:
    answer = await _post(client, body)

    assert answer.status_code == 422, answer.text
    refusal = answer.json()["detail"]
    assert refusal["reason"] == "invalid_request"
    assert refusal["detail"].startswith(where)
    assert refusal["errors"] and all("input" not in e for e in refusal["errors"])
    assert producer.sent == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"reason": "' + b"x" * 501 + b'"}', "string_too_long"),
        (b'{"why": "unknown field"}', "extra_forbidden"),
        (b"[1]", "model_attributes_type"),
    ],
)
async def test_other_unusable_bodies_keep_their_422_and_say_which_rule(
    client: httpx.AsyncClient, producer: FakeProducer, body: bytes, error: str
) -> None:
    answer = await _post(client, body)

    assert answer.status_code == 422
    assert answer.json()["detail"]["reason"] == "invalid_request"
    assert answer.json()["detail"]["errors"][0]["type"] == error
    assert producer.sent == []


@pytest.mark.parametrize("principal", [OVERSIZED])
async def test_a_request_the_projector_would_dead_letter_is_refused_not_recorded(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    answer = await _post(client, b'{"reason": "ticket DSR-7"}')

    assert answer.status_code == 422
    assert answer.json()["detail"]["reason"] == "too_large"
    assert producer.sent == []


@pytest.mark.parametrize(
    "fails", [KafkaConnectionError("no broker"), KafkaTimeoutError()], ids=repr
)
async def test_a_broker_failure_is_logged_and_answered_kafka_unavailable(
    client: httpx.AsyncClient, producer: FakeProducer, fails: Exception
) -> None:
    producer.fails = fails

    with capture_logs() as logs:
        answer = await _post(client, b"")

    assert answer.status_code == 503
    assert answer.json()["reason"] == "kafka_unavailable"
    [logged] = [e for e in logs if e["log_level"] == "error"]
    assert logged["event"] == "could not record an erasure request"
    assert logged["exc_info"] is True
    assert PHONE not in str(logged)


async def test_any_other_failure_is_logged_and_answered_500_not_kafka_unavailable(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    producer.fails = RuntimeError("a bug of ours")

    with capture_logs() as logs:
        answer = await _post(client, b"")

    assert answer.status_code == 500
    assert answer.json()["reason"] == "internal_error"
    [logged] = [e for e in logs if e["log_level"] == "error"]
    assert logged["event"] == "erasure request failed"
    assert logged["exc_info"] is True
