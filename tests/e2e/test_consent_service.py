"""The consent service as a real process on the real broker and database,
driven through `consent.events.v1` and HTTP as another system would; and its
rebuild command, run as an operator runs it.

The service under test projects into a private database whose tracking starts
at the log's end offsets taken when the module starts: it sees the records of
these tests (and of anything producing meanwhile), never the history of
earlier runs, and it never touches the shared projection. It listens on a free
port with its own consumer group, so it runs beside `make up` or the
`services` fixture of other tests.
"""

import asyncio
import os
import random
import socket
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from services.consent.rebuild import (
    RebuildRefusedError,
    rebuild_states,
    tracking_positions,
    verify_rebuilt,
    wait_for_tracking,
    write_rebuilt,
)
from shared.consent.state import SubjectState
from shared.db.pool import open_pool
from shared.kafka.clients import end_offsets, offsets_reader
from shared.kafka.topic_specs import EVENT_LOG_CONFIGS
from shared.phone import mask_phone
from shared.topics import CONSENT_EVENTS, dlq
from tests.support.eventually import eventually
from tests.support.kafka import TopicReader, private_topics
from tests.support.private_db import private_database
from tests.support.records import consent_event, unique_phone
from tests.support.services import ROOT, ServiceProcess
from tests.support.signing import SIGNING_ENV, TRUST, signed_headers
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

NOW = datetime.now(UTC).replace(microsecond=0)


def event(phone: str, kind: str = "ConsentGranted", /, **fields: Any) -> dict[str, Any]:
    """A valid event of `kind` an hour before NOW; a field given as ABSENT is left out."""
    return consent_event(
        phone, kind, **{"occurred_at": (NOW - timedelta(hours=1)).isoformat(), **fields}
    )


PURPOSES = [
    "event_reminder",
    "registration_confirmation",
    "educational_material",
    "inquiry_response",
    "customer_support",
]
T = TypeVar("T")


# ------------------------------------------------------------------ fixtures


async def _log_end(bootstrap: str, topic: str = CONSENT_EVENTS) -> dict[int, int]:
    reader = offsets_reader(bootstrap)
    await reader.start()
    try:
        return await end_offsets(reader, topic)
    finally:
        await reader.stop()


@pytest.fixture(scope="module")
async def projection_url(stack: Stack) -> AsyncIterator[str]:
    """The service's private database, tracking from the log's current end."""
    async with private_database(stack) as url:
        ends = await _log_end(stack.kafka_bootstrap)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                """INSERT INTO consent.tracking (topic, partition, next_offset)
                   SELECT $1, p, o FROM unnest($2::int[], $3::bigint[]) AS t(p, o)""",
                CONSENT_EVENTS,
                list(ends),
                list(ends.values()),
            )
        finally:
            await conn.close()
        yield url


@pytest.fixture(scope="module")
async def projection(projection_url: str) -> AsyncIterator[Any]:
    pool = await open_pool(projection_url)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def consent(
    stack: Stack, projection_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServiceProcess]:
    port = _free_port()
    process = ServiceProcess(
        "consent",
        stack,
        tmp_path_factory.mktemp("consent-service"),
        {
            "DATABASE_URL": projection_url,
            "CONSENT_HTTP_PORT": str(port),
            "CONSENT_ADMIN_PORT": str(_free_port()),
            "CONSENT_GROUP_ID": f"consent-e2e-{uuid.uuid4().hex[:8]}",
        },
    )
    process.port = port
    process.start()
    try:
        await asyncio.to_thread(process.wait_ready)
        yield process
    finally:
        process.stop()


@pytest.fixture
async def http(consent: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=consent.url, timeout=5) as client:
        yield client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def at(hours: float) -> str:
    return (NOW + timedelta(hours=hours)).isoformat()


async def send(
    producer: AIOKafkaProducer,
    items: list[tuple[str, dict[str, Any] | bytes]],
    topic: str = CONSENT_EVENTS,
) -> list[Any]:
    encoded = [(key, orjson.dumps(v) if isinstance(v, dict) else v) for key, v in items]
    futures = [
        await producer.send(topic, v, key.encode(), headers=signed_headers(v)) for key, v in encoded
    ]
    return list(await asyncio.gather(*futures))


# ------------------------------------------------------------ the HTTP API


async def test_consent_shows_the_grant_then_the_opt_out(
    http: httpx.AsyncClient, producer: AIOKafkaProducer, phone: str
) -> None:
    granted = event(
        phone,
        source="website_form",
        purposes=["event_reminder", "registration_confirmation"],
        expires_at=at(24 * 30),
    )
    await send(producer, [(phone, granted)])

    async def consent() -> dict[str, Any]:
        response = await http.get(f"/v1/subjects/{phone}/consent")
        assert response.status_code == 200, response.text
        return dict(response.json())

    body = await eventually(consent, lambda b: b["version"] == 1)
    assert (body["subject"], body["status"]) == (phone, "opted_in")
    assert (body["last_event_id"], body["opt_out_event_id"]) == (granted["event_id"], None)
    assert set(body["purposes"]) == {"event_reminder", "registration_confirmation"}
    grant = body["purposes"]["event_reminder"]
    assert (grant["source"], grant["event_id"], grant["expired"]) == (
        "website_form",
        granted["event_id"],
        False,
    )
    assert datetime.fromisoformat(grant["granted_at"]) == NOW - timedelta(hours=1)
    assert datetime.fromisoformat(grant["expires_at"]) == NOW + timedelta(days=30)
    # wa_id digits name the same subject
    by_wa_id = (await http.get(f"/v1/subjects/{phone[1:]}/consent")).json()
    assert by_wa_id == body

    opted_out = event(phone, "OptedOut", occurred_at=at(-0.5))
    await send(producer, [(phone, opted_out)])

    body = await eventually(consent, lambda b: b["version"] == 2)
    assert (body["status"], body["purposes"]) == ("opted_out", {})
    assert body["opt_out_event_id"] == body["last_event_id"] == opted_out["event_id"]
    assert datetime.fromisoformat(body["opted_out_at"]) == NOW - timedelta(minutes=30)
    assert body["suspended_by_opt_out"] == ["event_reminder", "registration_confirmation"]


async def test_subject_without_events_is_unknown(http: httpx.AsyncClient, phone: str) -> None:
    response = await http.get(f"/v1/subjects/{phone}/consent")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["purposes"], body["version"]) == ("unknown", {}, 0)
    assert body["last_event_id"] is None
    assert (await http.get(f"/v1/subjects/{phone}/events")).json() == {
        "subject": phone,
        "identifiers": [phone],
        "events": [],
    }


async def test_history_is_in_log_order_and_the_state_in_occurred_at_order(
    http: httpx.AsyncClient, producer: AIOKafkaProducer, phone: str
) -> None:
    produced = [
        event(phone, occurred_at=at(-1)),
        event(phone, "OptedOut", occurred_at=at(-3)),
        event(phone, "OptedIn", occurred_at=at(-2)),
    ]
    acks = await send(producer, [(phone, e) for e in produced])

    async def history() -> list[dict[str, Any]]:
        return list((await http.get(f"/v1/subjects/{phone}/events")).json()["events"])

    events = await eventually(history, lambda es: len(es) == 3)
    assert [e["event_id"] for e in events] == [e["event_id"] for e in produced]
    assert [(e["log"]["partition"], e["log"]["offset"]) for e in events] == [
        (a.partition, a.offset) for a in acks
    ]
    assert {e["log"]["topic"] for e in events} == {CONSENT_EVENTS}
    assert events[1]["type"] == "OptedOut"
    # Folded by occurred_at, the grant (the newest) comes last: opted in.
    state = (await http.get(f"/v1/subjects/{phone}/consent")).json()
    assert (state["status"], state["last_event_id"]) == ("opted_in", produced[0]["event_id"])


@pytest.mark.parametrize("path", ["consent", "events"])
@pytest.mark.parametrize("malformed", ["12345", "not-a-phone", "+7916123", "007916123456"])
async def test_malformed_phone_is_refused_with_a_reason(
    http: httpx.AsyncClient, path: str, malformed: str
) -> None:
    response = await http.get(f"/v1/subjects/{malformed}/{path}")

    assert response.status_code == 422
    assert response.json()["detail"]["reason"] == "invalid_phone"
    assert response.json()["detail"]["detail"]


async def test_health_readiness_and_metrics(
    http: httpx.AsyncClient, producer: AIOKafkaProducer, phone: str
) -> None:
    granted = event(phone)
    await send(producer, [(phone, event(phone, purposes=["marketing"])), (phone, granted)])
    await eventually(
        lambda: http.get(f"/v1/subjects/{phone}/consent"),
        lambda r: r.json()["last_event_id"] == granted["event_id"],
    )

    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert all(ready.json()["checks"].values())
    metrics = (await http.get("/metrics")).text
    samples = _samples(metrics)
    assert samples["consent_events_applied_total"] >= 1
    assert samples["consent_subjects_refolded_total"] >= 1
    assert samples['consent_events_rejected_total{reason="purpose_not_permitted"}'] >= 1
    assert any(name.startswith("consent_projection_lag_records{") for name in samples)


def _samples(exposition: str) -> dict[str, float]:
    samples = {}
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


# ------------------------------------------------------- kill -9 mid-stream


async def test_projection_after_kill_9_equals_a_rebuild_from_the_log(
    stack: Stack, consent: ServiceProcess, projection: Any, producer: AIOKafkaProducer
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    subjects = [unique_phone() for _ in range(300)]
    partitions = sorted(await _log_end(stack.kafka_bootstrap))
    stream = _consent_stream(rng, subjects, partitions, events=3000)
    start = await _log_end(stack.kafka_bootstrap)
    chunks = [stream[i : i + 500] for i in range(0, len(stream), 500)]

    await _send_stream(producer, chunks[0])
    await eventually(
        lambda: tracking_positions(projection),
        lambda tracked: any(tracked.get(p, 0) > o for p, o in start.items()),
    )
    await _send_stream(producer, chunks[1])
    consent.stop(kill=True)  # SIGKILL, most likely mid-batch
    for chunk in chunks[2:4]:
        await _send_stream(producer, chunk)
    consent.start()
    await asyncio.to_thread(consent.wait_ready)
    for chunk in chunks[4:]:
        await _send_stream(producer, chunk)
    ends = await _log_end(stack.kafka_bootstrap)
    await wait_for_tracking(projection, CONSENT_EVENTS, ends, timeout=60)

    rows = await projection.fetch(
        "SELECT subject, state FROM consent.subjects WHERE subject = ANY($1)", subjects
    )
    live = {row["subject"]: SubjectState.model_validate(row["state"]) for row in rows}
    rebuilt = await rebuild_states(
        stack.kafka_bootstrap, trust=TRUST, subjects=subjects, from_offsets=start
    )
    assert rebuilt.rejected, f"the stream (seed {seed}) should hold rejects"
    assert live.keys() == rebuilt.states.keys(), f"seed {seed}"
    differing = sorted(s for s in live if live[s] != rebuilt.states[s])
    assert differing == [], f"seed {seed}: {len(differing)} subjects differ"
    stored = await projection.fetch(
        "SELECT event_id FROM consent.events WHERE subject = ANY($1)", subjects
    )
    stored_ids = [row["event_id"] for row in stored]
    assert len(stored_ids) == len(set(stored_ids))
    assert set(stored_ids) == {e.event.event_id for e in rebuilt.events}
    verification = await verify_rebuilt(projection, rebuilt, timeout=5)
    assert (verification.ok, verification.equal) == (True, len(live))


def _consent_stream(
    rng: random.Random, subjects: list[str], partitions: list[int], events: int
) -> list[tuple[str, bytes, int | None]]:
    """Grants, revocations, opt-outs and opt-ins arriving out of occurred_at order,
    some from the future (clamped), some resent (the same event again), some
    unusable, some put on another partition than the key's by another client; and
    links and identifier changes among the subjects, so that people of several
    identifiers are folded live and in the rebuild alike."""
    stream: list[tuple[str, bytes, int | None]] = []
    sent: dict[str, list[tuple[str, bytes, int | None]]] = defaultdict(list)
    for _ in range(events):
        subject = rng.choice(subjects)
        roll = rng.random()
        if roll < 0.04 and sent[subject]:
            stream.append(rng.choice(sent[subject]))
            continue
        if roll < 0.06:
            body = event(subject, purposes=["marketing"])
        elif roll < 0.09:
            other = rng.choice([s for s in subjects if s != subject])
            kind, field = rng.choice(
                [("IdentityLinked", "linked"), ("IdentifierChanged", "previous")]
            )
            body = event(
                subject, kind, source="whatsapp_webhook", occurred_at=at(-rng.uniform(0, 72))
            )
            body[field] = other
        else:
            kind = rng.choices(
                ["ConsentGranted", "ConsentRevoked", "OptedOut", "OptedIn"], [4, 2, 2, 2]
            )[0]
            hours = rng.uniform(0.05, 2) if rng.random() < 0.03 else -rng.uniform(0, 72)
            body = event(subject, kind, occurred_at=at(hours))
            if kind == "ConsentGranted":
                body["purposes"] = rng.sample(PURPOSES, rng.randint(1, 3))
                if rng.random() < 0.2:
                    body["expires_at"] = at(rng.uniform(-48, 48))
            elif kind == "ConsentRevoked" and rng.random() < 0.7:
                body["purposes"] = rng.sample(PURPOSES, rng.randint(1, 2))
        partition = rng.choice(partitions) if rng.random() < 0.2 else None
        item = (subject, orjson.dumps(body), partition)
        stream.append(item)
        sent[subject].append(item)
    return stream


async def _send_stream(
    producer: AIOKafkaProducer, items: list[tuple[str, bytes, int | None]]
) -> None:
    futures = [
        await producer.send(
            CONSENT_EVENTS, value, key.encode(), partition=partition, headers=signed_headers(value)
        )
        for key, value, partition in items
    ]
    await asyncio.gather(*futures)


# ---------------------------------------------------- the rebuild command


@pytest.fixture(scope="module")
async def event_log(stack: Stack) -> AsyncIterator[str]:
    """A private copy of the event log's layout, so the command reads only these tests."""
    topic = f"{CONSENT_EVENTS}.rebuild-test-{uuid.uuid4().hex[:8]}"
    async with private_topics(stack.kafka_bootstrap, {topic: EVENT_LOG_CONFIGS, dlq(topic): {}}):
        await eventually(lambda: _log_end(stack.kafka_bootstrap, topic), lambda e: len(e) == 3)
        yield topic


@pytest.fixture(scope="module")
async def rebuild_url(stack: Stack) -> AsyncIterator[str]:
    async with private_database(stack) as url:
        yield url


async def rebuild_command(stack: Stack, url: str, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.consent.rebuild",
        *args,
        cwd=Path(ROOT),
        env={
            **os.environ,
            **SIGNING_ENV,
            "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
            "DATABASE_URL": url,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, output.decode()


async def test_rebuild_command_writes_the_projection_and_verifies_it(
    stack: Stack, event_log: str, rebuild_url: str, producer: AIOKafkaProducer, phone: str
) -> None:
    alice, bob = phone, unique_phone()
    marketing = orjson.dumps(event(bob, purposes=["marketing"]))
    bob_granted = event(bob, purposes=["event_reminder", "customer_support"], occurred_at=at(-4))
    produced: list[tuple[str, dict[str, Any] | bytes]] = [
        (alice, event(alice, occurred_at=at(-5))),
        (alice, event(alice, "OptedOut", occurred_at=at(-2))),
        (alice, event(alice, "OptedIn", occurred_at=at(-3))),  # late and older
        (bob, bob_granted),
        (bob, marketing),
        (
            bob,
            event(bob, "ConsentRevoked", purposes=["customer_support"], occurred_at=at(-1)),
        ),
        (bob, bob_granted),  # resent
    ]
    await send(producer, produced, topic=event_log)
    dead_letters = await TopicReader(stack.kafka_bootstrap, dlq(event_log)).start()
    db = await asyncpg.connect(rebuild_url)
    try:
        status, out = await rebuild_command(stack, rebuild_url, "--topic", event_log)
        assert status == 0, out
        assert "rejected 1 (purpose_not_permitted: 1)" in out
        assert "5 events inserted" in out
        assert await _statuses(db) == {alice: "opted_out", bob: "opted_in"}
        assert await tracking_positions(db, event_log) == await _log_end(
            stack.kafka_bootstrap, event_log
        )
        # The projector had not reached the reject: the rebuild dead-letters it.
        (letter,) = await dead_letters.wait_for(lambda rs: len(rs) >= 1)
        assert (letter.key, letter.value) == (bob.encode(), marketing)
        assert dict(letter.headers)["error.reason"] == b"purpose_not_permitted"

        status, out = await rebuild_command(stack, rebuild_url, "--verify", "--topic", event_log)
        assert status == 0, out
        assert "2 subjects equal, 0 differ" in out

        # A projection gone wrong is named, masked, by both sources.
        await db.execute(
            "UPDATE consent.subjects SET state = $2::jsonb, status = 'unknown' WHERE subject = $1",
            alice,
            SubjectState(subject=alice).model_dump_json(),
        )
        for source in ("log", "table"):
            status, out = await rebuild_command(
                stack, rebuild_url, "--verify", "--from", source, "--topic", event_log
            )
            assert status == 1, out
            assert mask_phone(alice) in out
            assert alice not in out
            assert mask_phone(bob) not in out
        status, out = await rebuild_command(
            stack, rebuild_url, "--from", "table", "--topic", event_log
        )
        assert status == 0, out
        assert "1 subjects changed" in out
        assert await _statuses(db) == {alice: "opted_out", bob: "opted_in"}

        # The log moves on while nothing projects it: verify waits, then says so.
        opted_out = event(bob, "OptedOut", occurred_at=at(-0.5))
        await send(producer, [(bob, opted_out)], topic=event_log)
        status, out = await rebuild_command(
            stack, rebuild_url, "--verify", "--timeout", "1", "--topic", event_log
        )
        assert status == 2, out
        assert "did not reach" in out
        status, out = await rebuild_command(stack, rebuild_url, "--topic", event_log)
        assert status == 0, out
        assert "1 events inserted" in out
        status, out = await rebuild_command(stack, rebuild_url, "--verify", "--topic", event_log)
        assert status == 0, out
        assert await _statuses(db) == {alice: "opted_out", bob: "opted_out"}
    finally:
        await db.close()
        await dead_letters.stop()


async def test_rebuild_refuses_to_write_when_the_projector_moved(
    stack: Stack, event_log: str, rebuild_url: str, producer: AIOKafkaProducer, phone: str
) -> None:
    await send(producer, [(phone, event(phone))], topic=event_log)
    pool = await open_pool(rebuild_url)
    try:
        before = await tracking_positions(pool, event_log)
        rebuilt = await rebuild_states(stack.kafka_bootstrap, trust=TRUST, topic=event_log)
        # What a live projector does meanwhile: it applies a record.
        await pool.execute(
            """INSERT INTO consent.tracking (topic, partition, next_offset) VALUES ($1, 99, 1)
               ON CONFLICT (topic, partition) DO UPDATE
               SET next_offset = consent.tracking.next_offset + 1""",
            event_log,
        )
        with pytest.raises(RebuildRefusedError, match="moved during the rebuild"):
            await write_rebuilt(
                pool, rebuilt, tracked_before=before, bootstrap=stack.kafka_bootstrap
            )
        assert (
            await pool.fetchval("SELECT count(*) FROM consent.subjects WHERE subject = $1", phone)
            == 0
        )

        scoped = await rebuild_states(
            stack.kafka_bootstrap, trust=TRUST, topic=event_log, subjects=[phone]
        )
        assert set(scoped.states) == {phone}
        with pytest.raises(RebuildRefusedError, match="limited to some subjects"):
            await write_rebuilt(pool, scoped, tracked_before=before)
    finally:
        await pool.execute(
            "DELETE FROM consent.tracking WHERE topic = $1 AND partition = 99", event_log
        )
        await pool.close()


async def _statuses(db: Any) -> dict[str, str]:
    rows = await db.fetch("SELECT subject, status FROM consent.subjects")
    return {row["subject"]: row["status"] for row in rows}


async def test_a_scoped_rebuild_reads_the_history_of_every_linked_identifier(
    stack: Stack, event_log: str, producer: AIOKafkaProducer, phone: str
) -> None:
    """Asked for a user id only, the rebuild still folds the grant given for the
    number it is linked to, through a third identifier the link chain passes."""
    bsuid, other = f"RU.{uuid.uuid4().int % 10**20}", f"RU.{uuid.uuid4().int % 10**20}"
    link = {"source": "whatsapp_webhook", "occurred_at": at(-2)}
    await send(
        producer,
        [
            (phone, event(phone, occurred_at=at(-3))),
            (other, event(other, "IdentityLinked", linked=phone, **link)),
            (bsuid, event(bsuid, "IdentityLinked", linked=other, **link)),
        ],
        topic=event_log,
    )

    scoped = await rebuild_states(
        stack.kafka_bootstrap, trust=TRUST, topic=event_log, subjects=[bsuid]
    )

    assert scoped.scope == {bsuid, other, phone}
    state = scoped.states[bsuid]
    assert state.status.value == "opted_in"
    assert state.identifiers == tuple(sorted([bsuid, other, phone]))
