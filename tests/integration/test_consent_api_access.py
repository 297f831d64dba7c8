"""The consent API answers only callers whose token has the right scope, and records
every read (who, whom, when) with pseudonyms, never the number: on a real PostgreSQL."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from fastapi import FastAPI

from services.consent import access_log, erasure_request
from services.consent.access import AccessLog
from services.consent.api import subjects_router
from services.consent.store import ConsentStore
from services.consent.tokens import Tokens, new_token, token_hash
from shared.contract.limits import MAX_EVIDENCE_BYTES
from shared.topics import CONSENT_EVENTS
from tests.support.kafka import TopicReader
from tests.support.records import unique_phone
from tests.support.signing import PSEUDONYM_KEY, PSEUDONYMS
from tests.support.stack import Stack

READER, AUDITOR, ERASER = new_token(), new_token(), new_token()
TOKENS = Tokens.parse(
    "{"
    f'"crm": {{"sha256": "{token_hash(READER)}", "scopes": ["consent:read"]}},'
    f'"dpo": {{"sha256": "{token_hash(AUDITOR)}", '
    '"scopes": ["consent:read", "consent:evidence"]},'
    f'"privacy-desk": {{"sha256": "{token_hash(ERASER)}", "scopes": ["consent:erasure"]}}'
    "}"
)
LOOPBACK, REMOTE = ("127.0.0.1", 50000), ("203.0.113.7", 50000)


def _app(pool: Any, tokens: Tokens, producer: AIOKafkaProducer) -> FastAPI:
    app = FastAPI()
    app.include_router(
        subjects_router(ConsentStore(pool), tokens, AccessLog(pool, PSEUDONYMS), producer)
    )
    return app


@pytest.fixture
async def client(pool: Any, producer: AIOKafkaProducer) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(pool, TOKENS, producer), client=REMOTE)
    async with httpx.AsyncClient(transport=transport, base_url="http://consent") as http:
        yield http


async def _reads_of(pool: Any, phone: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT principal, scope, subject, identifiers FROM consent.access_log"
        " WHERE $1 = ANY(identifiers) ORDER BY id",
        PSEUDONYMS.of(phone),
    )
    return [dict(r) for r in rows]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 401, "missing_token"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "invalid_token"),
        (_bearer("cst_" + "x" * 43), 401, "invalid_token"),
        (_bearer(READER), 403, "insufficient_scope"),
    ],
)
async def test_evidence_is_refused_without_a_token_of_its_scope_and_nothing_is_recorded(
    client: httpx.AsyncClient,
    pool: Any,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    phone = unique_phone()

    answer = await client.get(f"/v1/subjects/{phone}/events", headers=headers)

    assert answer.status_code == status
    assert answer.json()["detail"]["reason"] == reason
    assert answer.headers["www-authenticate"].startswith("Bearer error=")
    assert await _reads_of(pool, phone) == []


async def test_each_read_is_recorded_with_who_and_when_and_pseudonyms_only(
    client: httpx.AsyncClient, pool: Any
) -> None:
    phone = unique_phone()

    state = await client.get(f"/v1/subjects/{phone}/consent", headers=_bearer(READER))
    history = await client.get(f"/v1/subjects/{phone}/events", headers=_bearer(AUDITOR))

    assert (state.status_code, history.status_code) == (200, 200)
    reads = await _reads_of(pool, phone)
    assert [(r["principal"], r["scope"]) for r in reads] == [
        ("crm", "consent:read"),
        ("dpo", "consent:evidence"),
    ]
    assert all(r["subject"] == PSEUDONYMS.of(phone) for r in reads)
    stored = await pool.fetch(
        "SELECT * FROM consent.access_log WHERE subject = $1", PSEUDONYMS.of(phone)
    )
    digits = phone.lstrip("+")
    assert stored and all(digits not in str(dict(row)) for row in stored)


async def test_without_configured_tokens_only_this_machine_is_answered(
    pool: Any, producer: AIOKafkaProducer
) -> None:
    phone = unique_phone()
    unconfigured = _app(pool, Tokens.parse(""), producer)
    answers = {}
    for name, peer in (("local", LOOPBACK), ("remote", REMOTE)):
        transport = httpx.ASGITransport(app=unconfigured, client=peer)
        async with httpx.AsyncClient(transport=transport, base_url="http://consent") as http:
            answers[name] = await http.get(f"/v1/subjects/{phone}/events")

    assert answers["local"].status_code == 200
    assert answers["remote"].status_code == 401
    assert answers["remote"].json()["detail"]["reason"] == "missing_token"
    [read] = await _reads_of(pool, phone)
    assert read["principal"].startswith("local-operator")


async def test_a_read_that_cannot_be_recorded_is_not_answered(
    pool: Any, producer: AIOKafkaProducer
) -> None:
    """Accountability first: a read the log does not show never happened."""

    class Unrecorded(AccessLog):
        async def record(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError(f"access log unavailable {uuid.uuid4()}")

    app = FastAPI()
    app.include_router(
        subjects_router(ConsentStore(pool), TOKENS, Unrecorded(pool, PSEUDONYMS), producer)
    )
    transport = httpx.ASGITransport(app=app, client=REMOTE, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://consent") as http:
        answer = await http.get(f"/v1/subjects/{unique_phone()}/consent", headers=_bearer(READER))

    assert answer.status_code == 500
    assert "subject" not in answer.text


async def test_the_access_log_command_lists_who_read_a_person(
    client: httpx.AsyncClient,
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    phone = unique_phone()
    await client.get(f"/v1/subjects/{phone}/consent", headers=_bearer(READER))
    monkeypatch.setenv("PSEUDONYM_KEY", PSEUDONYM_KEY)
    monkeypatch.setenv("DATABASE_URL", stack.database_url)
    monkeypatch.delenv("AUDIT_DATABASE_URL", raising=False)

    status = await asyncio.to_thread(access_log.main, [phone])

    lines = capsys.readouterr().out.strip().splitlines()
    assert status == 0
    assert len(lines) == 1 and "  crm  consent:read  " in lines[0]
    assert phone not in lines[0]  # masked


@pytest.mark.parametrize("token", [READER, AUDITOR], ids=["read", "evidence"])
async def test_an_erasure_request_needs_the_erasure_scope(
    client: httpx.AsyncClient, token: str
) -> None:
    answer = await client.post(f"/v1/subjects/{unique_phone()}/erasure", headers=_bearer(token))

    assert answer.status_code == 403
    assert answer.json()["detail"]["reason"] == "insufficient_scope"


async def test_an_erasure_request_is_recorded_on_the_log_with_who_asked_and_why(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    phone = unique_phone()
    events = await TopicReader(stack.kafka_bootstrap, CONSENT_EVENTS).start()
    try:
        answer = await client.post(
            f"/v1/subjects/{phone[1:]}/erasure",  # wa_id digits: any written form
            headers=_bearer(ERASER),
            json={"reason": "ticket DSR-118"},
        )
        assert answer.status_code == 202
        event_id = answer.json()["event_id"]

        def recorded(records: list[ConsumerRecord]) -> list[dict[str, Any]]:
            values = (orjson.loads(r.value) for r in records if r.key == phone.encode())
            return [v for v in values if v["event_id"] == event_id]

        [event] = recorded(await events.wait_for(lambda rs: bool(recorded(rs)), timeout=15))
    finally:
        await events.stop()
    assert answer.json()["subject"] == phone
    assert (event["type"], event["subject"], event["source"]) == (
        "ErasureRequested",
        phone,
        "erasure_api",
    )
    assert event["evidence"] == {"requested_by": "privacy-desk", "reason": "ticket DSR-118"}


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/subjects/not-a-number/erasure", None, 422),
        ("/v1/subjects/+79161234567/erasure", {"reason": "x" * 501}, 422),
        ("/v1/subjects/+79161234567/erasure", {"why": "unknown field"}, 422),
    ],
)
async def test_an_unusable_erasure_request_is_refused_with_why(
    client: httpx.AsyncClient, path: str, body: dict[str, Any] | None, status: int
) -> None:
    answer = await client.post(path, headers=_bearer(ERASER), json=body)

    assert answer.status_code == status
    assert answer.json()["detail"]


async def test_an_erasure_request_the_projector_would_refuse_never_reaches_the_log(
    client: httpx.AsyncClient, pool: Any, producer: AIOKafkaProducer, stack: Stack
) -> None:
    """Refused to whoever asks, API or command, before anything is published: the one
    record of the person's key is the request that was accepted after them."""
    phone = unique_phone()
    oversized = "privacy-desk " + "x" * MAX_EVIDENCE_BYTES
    verbose = Tokens.parse(
        orjson.dumps(
            {oversized: {"sha256": token_hash(ERASER), "scopes": ["consent:erasure"]}}
        ).decode()
    )
    events = await TopicReader(stack.kafka_bootstrap, CONSENT_EVENTS).start()
    try:
        surrogate = await client.post(
            f"/v1/subjects/{phone}/erasure",
            headers={**_bearer(ERASER), "Content-Type": "application/json"},
            content=b'{"reason": "ticket \\ud800"}',
        )
        transport = httpx.ASGITransport(app=_app(pool, verbose, producer), client=REMOTE)
        async with httpx.AsyncClient(transport=transport, base_url="http://consent") as http:
            too_large = await http.post(f"/v1/subjects/{phone}/erasure", headers=_bearer(ERASER))
        command = [phone, "--bootstrap", stack.kafka_bootstrap, "--requested-by"]
        refused = await asyncio.to_thread(erasure_request.main, [*command, oversized])
        accepted = await asyncio.to_thread(erasure_request.main, [*command, "privacy-desk"])

        def mine(records: list[ConsumerRecord]) -> list[dict[str, Any]]:
            return [orjson.loads(r.value) for r in records if r.key == phone.encode()]

        # One key, one partition: anything published before the accepted one is read first.
        found = mine(await events.wait_for(lambda rs: bool(mine(rs)), timeout=15))
    finally:
        await events.stop()
    assert (surrogate.status_code, surrogate.json()["detail"]["reason"]) == (
        422,
        "invalid_request",
    )
    assert (too_large.status_code, too_large.json()["detail"]["reason"]) == (422, "too_large")
    assert (refused, accepted) == (2, 0)
    [event] = found
    assert (event["source"], event["evidence"]["requested_by"]) == ("erasure_cli", "privacy-desk")
