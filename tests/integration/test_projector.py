"""The consent projector on the real broker and database.

Records are produced to the real `consent.events.v1`, read back with a real
aiokafka consumer and handed to `Projector.handle`, exactly as the consume loop
does. The projection is written to a private database (created for this
module, dropped after): the shared `consent.tracking` belongs to whatever
consent service runs beside the tests, and advancing it from here would make
that service skip records on its next assignment.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from prometheus_client import REGISTRY

from services.consent.projector import Projector
from services.consent.store import ConsentStore
from shared.consent.authenticity import parse_positions
from shared.consent.signing_cutover import current_ends, setting
from shared.consent.state import Status
from shared.contract.purposes import Purpose
from shared.db.pool import open_pool
from shared.kafka.batch_consumer import BatchConsumer
from shared.kafka.clients import end_offsets, group_consumer
from shared.phone import mask_phone
from shared.topics import CONSENT_EVENTS, dlq
from tests.support.kafka import TopicReader
from tests.support.private_db import private_database
from tests.support.records import ABSENT, consent_event, unique_phone
from tests.support.signing import ERASURE_INDEX, FORGER_KEY, INBOUND_KEY, TRUST, signed_headers
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


def event(phone: str, kind: str = "ConsentGranted", /, **fields: Any) -> dict[str, Any]:
    """A valid event of `kind` an hour before NOW; a field given as ABSENT is left out."""
    return consent_event(
        phone, kind, **{"occurred_at": (NOW - timedelta(hours=1)).isoformat(), **fields}
    )


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
async def database_url(stack: Stack) -> AsyncIterator[str]:
    """A private, migrated database for this module's projection."""
    async with private_database(stack) as url:
        yield url


@pytest.fixture(scope="module")
async def store(database_url: str) -> AsyncIterator[ConsentStore]:
    db = await open_pool(database_url)
    yield ConsentStore(db, ERASURE_INDEX)
    await db.close()


@pytest.fixture(scope="module")
async def log(stack: Stack, producer: AIOKafkaProducer) -> AsyncIterator["Log"]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.kafka_bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        fetch_max_wait_ms=20,  # a seek waits for the fetch in flight
    )
    await consumer.start()
    yield Log(producer, consumer)
    await consumer.stop()


@pytest.fixture
def projector(store: ConsentStore, log: "Log") -> Projector:
    return Projector(store, log.consumer, log.producer, TRUST)


class Log:
    """Produces records to consent.events.v1 and reads exactly those back."""

    def __init__(self, producer: AIOKafkaProducer, consumer: AIOKafkaConsumer) -> None:
        self.producer = producer
        self.consumer = consumer

    async def produce(
        self,
        key: str,
        *values: bytes | dict[str, Any] | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> list[ConsumerRecord]:
        encoded = [orjson.dumps(v) if isinstance(v, dict) else v for v in values]
        futures = [
            await self.producer.send(
                CONSENT_EVENTS,
                value=v,
                key=key.encode(),
                # Signed as inbound signs, unless the test gives headers of its own.
                headers=headers if headers is not None else signed_headers(v or b""),
            )
            for v in encoded
        ]
        sent = await asyncio.gather(*futures)
        return await self.read({(m.partition, m.offset) for m in sent})

    async def read(self, wanted: set[tuple[int, int]]) -> list[ConsumerRecord]:
        tps = {TopicPartition(CONSENT_EVENTS, p) for p, _ in wanted}
        self.consumer.assign(sorted(tps))
        for tp in tps:
            self.consumer.seek(tp, min(o for p, o in wanted if p == tp.partition))
        found: dict[tuple[int, int], ConsumerRecord] = {}
        async with asyncio.timeout(15):
            while len(found) < len(wanted):
                fetched = await self.consumer.getmany(timeout_ms=200)
                for records in fetched.values():
                    found.update(
                        {
                            (r.partition, r.offset): r
                            for r in records
                            if (r.partition, r.offset) in wanted
                        }
                    )
        return [found[position] for position in sorted(wanted)]


# The broker's default message.max.bytes, which the input topics keep.
BROKER_MAX_MESSAGE_BYTES = 1_048_588


def at(hours: float) -> str:
    return (NOW + timedelta(hours=hours)).isoformat()


async def events_rows(store: ConsentStore, *subjects: str) -> list[dict[str, Any]]:
    rows = await store.pool.fetch(
        'SELECT * FROM consent.events WHERE subject = ANY($1) ORDER BY partition, "offset"',
        list(subjects),
    )
    return [dict(r) for r in rows]


async def snapshot(store: ConsentStore, subjects: list[str]) -> dict[str, Any]:
    """Everything a batch may write: rows with their timestamps, and the positions."""
    return {
        "events": await events_rows(store, *subjects),
        "subjects": [
            dict(r)
            for r in await store.pool.fetch(
                "SELECT * FROM consent.subjects WHERE subject = ANY($1) ORDER BY subject", subjects
            )
        ],
        "tracking": await store.tracking(CONSENT_EVENTS),
    }


# ------------------------------------------------------------- (a) the DLQ

# Each: the reason, and how to spoil an otherwise valid record about `subject`.
REJECTS: list[tuple[str, str, Callable[[str], bytes | None]]] = [
    ("invalid_json", "not-json", lambda s: b'{"event_id": "x", "type": '),
    ("invalid_json", "not-utf8", lambda s: b"\xff\xfe{}"),
    ("invalid_json", "tombstone", lambda s: None),
    ("invalid_schema", "not-an-object", lambda s: orjson.dumps([event(s)])),
    (
        "invalid_schema",
        "evidence-not-an-object",
        lambda s: orjson.dumps(event(s, evidence="yes")),
    ),
    ("invalid_schema", "source-missing", lambda s: orjson.dumps(event(s, source=ABSENT))),
    ("unknown_type", "unknown-type", lambda s: orjson.dumps(event(s, type="ConsentMaybe"))),
    ("unknown_type", "type-missing", lambda s: orjson.dumps(event(s, type=ABSENT))),
    ("invalid_phone", "not-a-number", lambda s: orjson.dumps(event(s, subject="12345"))),
    ("invalid_phone", "subject-missing", lambda s: orjson.dumps(event(s, subject=ABSENT))),
    (
        "invalid_source",
        "grant-source",
        lambda s: orjson.dumps(event(s, source="bought_list")),
    ),
    (
        "invalid_source",
        "opt-out-source",
        lambda s: orjson.dumps(event(s, "OptedOut", source="website_form")),
    ),
    (
        "purpose_not_permitted",
        "marketing",
        lambda s: orjson.dumps(event(s, purposes=["event_reminder", "marketing"])),
    ),
    ("missing_purposes", "grant-empty", lambda s: orjson.dumps(event(s, purposes=[]))),
    ("missing_purposes", "grant-absent", lambda s: orjson.dumps(event(s, purposes=ABSENT))),
    (
        "missing_purposes",
        "revoke-empty",
        lambda s: orjson.dumps(event(s, "ConsentRevoked", purposes=[])),
    ),
    ("missing_evidence", "empty", lambda s: orjson.dumps(event(s, evidence={}))),
    ("missing_evidence", "absent", lambda s: orjson.dumps(event(s, evidence=ABSENT))),
    (
        "invalid_timestamp",
        "no-offset",
        lambda s: orjson.dumps(event(s, occurred_at="2026-11-27T10:00:00")),
    ),
    (
        "invalid_timestamp",
        "garbage",
        lambda s: orjson.dumps(event(s, occurred_at="yesterday")),
    ),
    (
        "invalid_timestamp",
        "expiry",
        lambda s: orjson.dumps(event(s, expires_at="next year")),
    ),
    (
        "invalid_timestamp",
        "year-0-in-utc",  # a valid offset on a valid date, but no timestamptz can hold it
        lambda s: orjson.dumps(event(s, occurred_at="0001-01-01T00:00:00+01:00")),
    ),
    ("invalid_event_id", "empty", lambda s: orjson.dumps(event(s, event_id=""))),
    ("invalid_event_id", "too-long", lambda s: orjson.dumps(event(s, event_id="e" * 129))),
    ("invalid_event_id", "absent", lambda s: orjson.dumps(event(s, event_id=ABSENT))),
    # PostgreSQL cannot store U+0000: refused before it could fail the batch.
    ("invalid_event_id", "nul", lambda s: orjson.dumps(event(s, event_id="ev-\x00"))),
    (
        "invalid_schema",
        "nul-in-source",
        lambda s: orjson.dumps(event(s, "ConsentRevoked", source="crm\x00")),
    ),
]


@pytest.mark.parametrize(
    ("reason", "spoil"), [pytest.param(r, f, id=f"{r}-{n}") for r, n, f in REJECTS]
)
async def test_unusable_record_goes_to_dlq_unchanged_and_the_next_one_is_applied(
    stack: Stack,
    store: ConsentStore,
    log: Log,
    projector: Projector,
    phone: str,
    reason: str,
    spoil: Callable[[str], bytes | None],
) -> None:
    dead_letters = await TopicReader(stack.kafka_bootstrap, dlq(CONSENT_EVENTS)).start()
    try:
        valid = event(phone)
        bad, good = await log.produce(
            phone, spoil(phone), valid, headers=[("traceparent", b"00-abc-01")]
        )

        await projector.handle([bad, good])

        def from_bad(records: list[ConsumerRecord]) -> list[ConsumerRecord]:
            return [
                r
                for r in records
                if _header(r, "source.partition") == str(bad.partition).encode()
                and _header(r, "source.offset") == str(bad.offset).encode()
            ]

        letter = from_bad(await dead_letters.wait_for(lambda rs: bool(from_bad(rs)), timeout=15))[0]
    finally:
        await dead_letters.stop()
    assert letter.value == bad.value
    assert letter.key == phone.encode()
    assert _header(letter, "error.reason") == reason.encode()
    assert _header(letter, "error.detail")
    assert _header(letter, "source.topic") == CONSENT_EVENTS.encode()
    assert _header(letter, "traceparent") == b"00-abc-01"
    # The consumer goes on: the valid record after it is applied, the position passes both.
    state = await store.subject(phone)
    assert state is not None
    assert state.status is Status.OPTED_IN
    assert state.last_event_id == valid["event_id"]
    assert [r["event_id"] for r in await events_rows(store, phone)] == [valid["event_id"]]
    assert (await store.tracking(CONSENT_EVENTS))[good.partition] >= good.offset + 1


async def test_a_record_as_large_as_the_topic_takes_is_dead_lettered_whole(
    stack: Stack, store: ConsentStore, log: Log, projector: Projector, phone: str
) -> None:
    """A dead letter is the original plus headers: its topic must take more than the
    input topic does, or the largest unusable records could never leave the batch."""
    dead_letters = await TopicReader(stack.kafka_bootstrap, dlq(CONSENT_EVENTS)).start()
    try:
        padding = "x" * (BROKER_MAX_MESSAGE_BYTES - 400)
        bad = event(phone, purposes=["marketing"], evidence={"form": padding})
        valid = event(phone)
        records = await log.produce(phone, bad, valid)

        await projector.handle(records)

        offset = str(records[0].offset).encode()
        letters = await dead_letters.wait_for(
            lambda rs: any(_header(r, "source.offset") == offset for r in rs), timeout=15
        )
    finally:
        await dead_letters.stop()
    [letter] = [r for r in letters if _header(r, "source.offset") == offset]
    assert letter.value == records[0].value
    assert _header(letter, "error.reason") == b"too_large"  # its evidence, over 64 KiB
    state = await store.subject(phone)
    assert state is not None
    assert state.last_event_id == valid["event_id"]


def _header(record: ConsumerRecord, name: str) -> bytes | None:
    return next((v for k, v in record.headers if k == name), None)


# ------------------------------------------------------- (b) redelivery


async def test_redelivered_batch_changes_nothing(
    store: ConsentStore, log: Log, projector: Projector
) -> None:
    alice, bob = unique_phone(), unique_phone()
    records = [
        *await log.produce(
            alice,
            event(alice, occurred_at=at(-5)),
            event(alice, "OptedOut", occurred_at=at(-2)),
            event(alice, "OptedIn", occurred_at=at(-3)),  # late and older: changes nothing
            b"not json",
        ),
        *await log.produce(
            bob,
            event(bob, purposes=["event_reminder", "customer_support"], occurred_at=at(-4)),
            event(bob, "ConsentRevoked", purposes=["customer_support"], occurred_at=at(-1)),
        ),
    ]
    await projector.handle(records)
    applied = await snapshot(store, [alice, bob])
    assert {s["subject"]: s["status"] for s in applied["subjects"]} == {
        alice: "opted_out",
        bob: "opted_in",
    }

    await projector.handle(records)  # the same consumer, the batch again
    assert await snapshot(store, [alice, bob]) == applied

    # A restarted consumer that has not sought yet: only the database can tell.
    restarted = Projector(store, log.consumer, log.producer, TRUST)
    await restarted.handle(records)
    await restarted.handle(records[1:3])
    assert await snapshot(store, [alice, bob]) == applied


async def test_an_event_reusing_an_event_id_with_another_payload_is_dead_lettered(
    stack: Stack, store: ConsentStore, log: Log, projector: Projector, phone: str
) -> None:
    """An OptedOut that reuses a grant's event_id was once dropped as a redelivery:
    the opt-out was lost without a trace. Now it is an event_id_conflict in the DLQ,
    counted; an identical second record of the grant stays a silent no-op."""
    conflicts_before = REGISTRY.get_sample_value("consent_event_id_conflicts_total") or 0.0
    dead_letters = await TopicReader(stack.kafka_bootstrap, dlq(CONSENT_EVENTS)).start()
    try:
        grant = event(phone)
        reused = event(phone, "OptedOut", event_id=grant["event_id"], occurred_at=at(-1))
        first = await log.produce(phone, grant, grant, reused)
        await projector.handle(first)
        again = await log.produce(phone, reused)  # in a later batch too
        await projector.handle(again)

        sources = {str(r.offset).encode() for r in (first[2], again[0])}
        letters = await dead_letters.wait_for(
            lambda rs: {_header(r, "source.offset") for r in rs} >= sources, timeout=15
        )
        await asyncio.sleep(0.5)
        await dead_letters.poll()
    finally:
        await dead_letters.stop()
    # A consent service running beside the tests dead-letters them too: count sources.
    ours = [r for r in dead_letters.records if r.key == phone.encode()]
    assert {_header(r, "source.offset") for r in ours} == sources
    for letter in ours:
        assert _header(letter, "error.reason") == b"event_id_conflict"
        assert str(first[0].offset).encode() in (_header(letter, "error.detail") or b"")
    assert len(letters) >= 2
    state = await store.subject(phone)
    assert state is not None
    assert state.status is Status.OPTED_IN  # the conflicting event changed nothing
    assert [r["event_id"] for r in await events_rows(store, phone)] == [grant["event_id"]]
    conflicts = REGISTRY.get_sample_value("consent_event_id_conflicts_total") or 0.0
    assert conflicts - conflicts_before == 2


# ------------------------------------------------------------ (c) clamping


async def test_occurred_at_later_than_the_broker_time_is_clamped(
    store: ConsentStore, log: Log, projector: Projector, phone: str
) -> None:
    future = event(phone, occurred_at=at(24), purposes=["event_reminder"])
    past = event(phone, occurred_at=at(-1), purposes=["customer_support"])
    records = await log.produce(phone, future, past)
    # The topic stamps LogAppendTime: the broker's clock, one for every producer.
    assert {r.timestamp_type for r in records} == {1}

    await projector.handle(records)

    log_time = datetime.fromtimestamp(records[0].timestamp / 1000, UTC)
    rows = {r["event_id"]: r for r in await events_rows(store, phone)}
    clamped, kept = rows[future["event_id"]], rows[past["event_id"]]
    assert (clamped["clamped"], clamped["occurred_at"]) == (True, log_time)
    assert datetime.fromisoformat(clamped["payload"]["occurred_at"]) == log_time
    assert (kept["clamped"], kept["occurred_at"]) == (False, NOW - timedelta(hours=1))
    state = await store.subject(phone)
    assert state is not None
    assert state.grants[Purpose.EVENT_REMINDER].granted_at == log_time
    assert state.grants[Purpose.CUSTOMER_SUPPORT].granted_at == NOW - timedelta(hours=1)
    # Clamped, the "future" grant is now the later one of the two.
    assert state.last_event_id == future["event_id"]


async def test_an_opt_out_whose_text_holds_a_nul_is_applied_with_the_nul_replaced(
    store: ConsentStore, log: Log, projector: Projector, phone: str
) -> None:
    granted = event(phone)
    stop = event(phone, "OptedOut", occurred_at=at(-0.5))
    stop["evidence"] = {**stop["evidence"], "text": "STOP\x00"}
    records = await log.produce(phone, granted, stop)

    await projector.handle(records)

    state = await store.subject(phone)
    assert state is not None
    assert (state.status, state.opt_out_event_id) == (Status.OPTED_OUT, stop["event_id"])
    rows = {r["event_id"]: r for r in await events_rows(store, phone)}
    assert rows[stop["event_id"]]["payload"]["evidence"]["text"] == "STOP\ufffd"


# --------------------------------------------------------- (d) append-only


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE consent.events SET type = 'OptedIn' WHERE event_id = $1",
        "DELETE FROM consent.events WHERE event_id = $1",
        "TRUNCATE consent.events",
    ],
    ids=["update", "delete", "truncate"],
)
async def test_events_table_refuses_change(
    store: ConsentStore, log: Log, projector: Projector, phone: str, statement: str
) -> None:
    granted = event(phone)
    await projector.handle(await log.produce(phone, granted))
    args = [granted["event_id"]] if "$1" in statement else []

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await store.pool.execute(statement, *args)

    rows = await events_rows(store, phone)
    assert [(r["event_id"], r["type"]) for r in rows] == [(granted["event_id"], "ConsentGranted")]


# ------------------------------------------------------- (e) late arrivals


async def test_late_older_opt_in_and_grant_do_not_undo_a_newer_opt_out(
    store: ConsentStore, log: Log, projector: Projector, phone: str
) -> None:
    # Given a grant and a newer opt-out
    await projector.handle(
        await log.produce(
            phone,
            event(phone, occurred_at=at(-5), purposes=["event_reminder"]),
            event(phone, "OptedOut", occurred_at=at(-2)),
        )
    )
    # When an older opt-in and an older grant arrive late
    await projector.handle(
        await log.produce(
            phone,
            event(phone, "OptedIn", occurred_at=at(-3)),
            event(phone, occurred_at=at(-4), purposes=["educational_material"]),
        )
    )
    # Then the subject is still opted out, with nothing to message for
    late = await store.subject(phone)
    assert late is not None
    assert (late.status, late.grants, late.version) == (Status.OPTED_OUT, {}, 4)

    # And a newer opt-in does count: it restores what the opt-out suspended
    newer = event(phone, "OptedIn", occurred_at=at(-1))
    await projector.handle(await log.produce(phone, newer))
    restored = await store.subject(phone)
    assert restored is not None
    assert restored.status is Status.OPTED_IN
    assert set(restored.grants) == {Purpose.EVENT_REMINDER, Purpose.EDUCATIONAL_MATERIAL}
    assert restored.last_event_id == newer["event_id"]


def _fold_counts() -> tuple[float, float]:
    """consent_subjects_folded_on_total and consent_subjects_refolded_total."""
    return (
        REGISTRY.get_sample_value("consent_subjects_folded_on_total") or 0.0,
        REGISTRY.get_sample_value("consent_subjects_refolded_total") or 0.0,
    )


async def _mark_stored_version(store: ConsentStore, phone: str, version: int) -> None:
    """Tells the paths apart: folding onto the stored state keeps the mark; a refold
    of the history does not."""
    await store.pool.execute(
        "UPDATE consent.subjects SET state = jsonb_set(state, '{version}', to_jsonb($2::int))"
        " WHERE subject = $1",
        phone,
        version,
    )


async def _through(store: ConsentStore, phone: str) -> tuple[Any, ...]:
    row = await store.pool.fetchrow(
        "SELECT through_occurred_at, through_log_time, through_partition, through_offset"
        " FROM consent.subjects WHERE subject = $1",
        phone,
    )
    return tuple(row)


async def _order_key_of(store: ConsentStore, event_id: str) -> tuple[Any, ...]:
    row = await store.pool.fetchrow(
        'SELECT occurred_at, log_time, partition, "offset" FROM consent.events WHERE event_id = $1',
        event_id,
    )
    return tuple(row)


async def test_events_sorting_after_the_history_are_folded_onto_the_stored_state(
    store: ConsentStore, log: Log, projector: Projector, phone: str
) -> None:
    grant = event(phone, occurred_at=at(-3))
    await projector.handle(await log.produce(phone, grant))
    assert await _through(store, phone) == await _order_key_of(store, grant["event_id"])
    await _mark_stored_version(store, phone, 41)

    # When an event that sorts after the whole history arrives
    opt_out = event(phone, "OptedOut", occurred_at=at(-1))
    counted = _fold_counts()
    await projector.handle(await log.produce(phone, opt_out))

    # Then it is applied to the stored state, not to a refold of the history
    state = await store.subject(phone)
    assert state is not None
    assert (state.version, state.status) == (42, Status.OPTED_OUT)
    assert await _through(store, phone) == await _order_key_of(store, opt_out["event_id"])
    assert _fold_counts() == (counted[0] + 1, counted[1])

    # When a late event sorts inside the history
    counted = _fold_counts()
    await projector.handle(await log.produce(phone, event(phone, "OptedIn", occurred_at=at(-2))))

    # Then the history is refolded from the events table: the mark is gone
    assert _fold_counts() == (counted[0], counted[1] + 1)
    state = await store.subject(phone)
    assert state is not None
    assert (state.version, state.status, state.last_event_id) == (
        3,
        Status.OPTED_OUT,
        opt_out["event_id"],
    )
    assert await _through(store, phone) == await _order_key_of(store, opt_out["event_id"])


async def test_a_state_stored_without_its_order_key_is_refolded(
    store: ConsentStore, log: Log, projector: Projector, phone: str
) -> None:
    """Rows written before the order key was stored carry NULL: never trusted."""
    await projector.handle(await log.produce(phone, event(phone, occurred_at=at(-3))))
    await _mark_stored_version(store, phone, 41)
    await store.pool.execute(
        "UPDATE consent.subjects SET through_occurred_at = NULL, through_log_time = NULL,"
        " through_partition = NULL, through_offset = NULL WHERE subject = $1",
        phone,
    )

    opt_out = event(phone, "OptedOut", occurred_at=at(-1))
    await projector.handle(await log.produce(phone, opt_out))

    state = await store.subject(phone)
    assert state is not None
    assert (state.version, state.status) == (2, Status.OPTED_OUT)
    assert await _through(store, phone) == await _order_key_of(store, opt_out["event_id"])


async def test_subject_spread_over_partitions_is_folded_as_one_history(
    store: ConsentStore, log: Log, projector: Projector, phone: str
) -> None:
    """Another system's partitioner may put the same key elsewhere."""
    grant = event(phone, occurred_at=at(-3))
    opt_out = event(phone, "OptedOut", occurred_at=at(-1))
    partitions = sorted(await end_offsets(log.consumer, CONSENT_EVENTS))
    sent = [
        await (
            await log.producer.send(CONSENT_EVENTS, orjson.dumps(v), phone.encode(), partition=p)
        )
        for v, p in ((opt_out, partitions[0]), (grant, partitions[-1]))
    ]
    records = await log.read({(m.partition, m.offset) for m in sent})

    for record in records:  # one partition at a time, the opt-out first
        await projector.handle([record])

    state = await store.subject(phone)
    assert state is not None
    assert (state.status, state.last_event_id) == (Status.OPTED_OUT, opt_out["event_id"])


async def test_two_instances_applying_one_subject_at_once_lose_nothing(
    store: ConsentStore, log: Log
) -> None:
    """Scaled out, two instances own different partitions, and one subject's
    events may sit in both: each refold must see the other's events."""
    partitions = sorted(await end_offsets(log.consumer, CONSENT_EVENTS))
    if len(partitions) < 2:
        pytest.skip("needs two partitions")
    subjects = [unique_phone() for _ in range(5)]
    sent = [
        await (await log.producer.send(CONSENT_EVENTS, orjson.dumps(body), s.encode(), partition=p))
        for s in subjects
        for body, p in (
            (event(s, occurred_at=at(-2)), partitions[0]),
            (event(s, "OptedOut", occurred_at=at(-1)), partitions[1]),
        )
    ]
    records = await log.read({(m.partition, m.offset) for m in sent})
    first, second = (Projector(store, log.consumer, log.producer, TRUST) for _ in range(2))

    await asyncio.gather(
        first.handle([r for r in records if r.partition == partitions[0]]),
        second.handle([r for r in records if r.partition == partitions[1]]),
    )

    for subject in subjects:
        state = await store.subject(subject)
        assert state is not None
        assert (state.version, state.status, set(state.suspended)) == (
            2,
            Status.OPTED_OUT,
            {Purpose.EVENT_REMINDER},
        ), mask_phone(subject)


# ---------------------------------------------- the consume loop, seeking


async def test_on_assignment_the_consumer_starts_at_the_tracked_positions(
    stack: Stack, store: ConsentStore, log: Log
) -> None:
    before, after = unique_phone(), unique_phone()
    await log.produce(before, event(before))  # already covered by the tracked position
    ends = await end_offsets(log.consumer, CONSENT_EVENTS)
    await store.pool.execute(
        """INSERT INTO consent.tracking (topic, partition, next_offset)
           SELECT $1, p, o FROM unnest($2::int[], $3::bigint[]) AS t(p, o)
           ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset""",
        CONSENT_EVENTS,
        list(ends),
        list(ends.values()),
    )
    await log.produce(after, event(after))

    # A new group has no committed offsets: without the seek it would start at the earliest.
    consumer = group_consumer(stack.kafka_bootstrap, f"consent-test-{uuid.uuid4().hex[:8]}")
    projector = Projector(store, consumer, log.producer, TRUST)
    await consumer.start()
    loop = BatchConsumer(
        consumer, projector.handle, name="test", on_poll=projector.track_idle_positions
    )
    consumer.subscribe([CONSENT_EVENTS], listener=loop.listener(projector))  # as main does
    task = asyncio.create_task(loop.run())
    try:
        async with asyncio.timeout(30):
            while await store.subject(after) is None:
                assert not task.done(), task
                await asyncio.sleep(0.1)
    finally:
        loop.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()
    assert await store.subject(before) is None
    assert await events_rows(store, before) == []


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([], id="unsigned"),
        pytest.param("forged", id="signed-by-an-untrusted-key"),
        pytest.param("other-bytes", id="signature-of-another-event"),
    ],
)
async def test_an_opt_in_without_inbounds_signature_is_dead_lettered_and_lifts_nothing(
    stack: Stack,
    store: ConsentStore,
    log: Log,
    projector: Projector,
    phone: str,
    headers: list[tuple[str, bytes]] | str,
) -> None:
    """Clause 4.4: only the user can lift their STOP. Anyone able to write to the log
    could otherwise write an OptedIn with source whatsapp_reply for any number."""
    await projector.handle(
        await log.produce(
            phone,
            event(phone, occurred_at=at(-5), purposes=["event_reminder"]),
            event(phone, "OptedOut", occurred_at=at(-2)),
        )
    )
    forged = event(phone, "OptedIn", occurred_at=at(-1))
    raw = orjson.dumps(forged)
    if headers == "forged":
        headers = [FORGER_KEY.header(raw)]
    elif headers == "other-bytes":
        headers = [INBOUND_KEY.header(orjson.dumps({**forged, "event_id": "another"}))]
    assert isinstance(headers, list)
    dead_letters = await TopicReader(stack.kafka_bootstrap, dlq(CONSENT_EVENTS)).start()
    try:
        [record] = await log.produce(phone, forged, headers=headers)
        await projector.handle([record])

        def letters(records: list[ConsumerRecord]) -> list[ConsumerRecord]:
            at = (str(record.partition).encode(), str(record.offset).encode())
            return [
                r
                for r in records
                if (_header(r, "source.partition"), _header(r, "source.offset")) == at
            ]

        # The running consent service, when an end-to-end test started it, may
        # dead-letter the same record beside this projector.
        letter = letters(await dead_letters.wait_for(lambda rs: bool(letters(rs)), timeout=15))[0]
    finally:
        await dead_letters.stop()
    assert letter.value == raw
    assert _header(letter, "error.reason") == b"unauthenticated_source"
    state = await store.subject(phone)
    assert state is not None
    assert state.status is Status.OPTED_OUT
    assert forged["event_id"] not in [r["event_id"] for r in await events_rows(store, phone)]
    assert (await store.tracking(CONSENT_EVENTS))[record.partition] >= record.offset + 1

    # The same opt-in as inbound writes it, signed: the user's own START counts.
    await projector.handle(
        await log.produce(phone, {**forged, "event_id": forged["event_id"] + "s"})
    )
    lifted = await store.subject(phone)
    assert lifted is not None and lifted.status is Status.OPTED_IN


async def test_an_unsigned_opt_out_stops_and_stays_unauthenticated_through_a_refold(
    store: ConsentStore, log: Log, projector: Projector, phone: str
) -> None:
    """The projection keeps whether the opt-out was proved: it decides whether the
    opt-out gets a confirmation, and a refold reads it back from consent.events."""
    await projector.handle(
        await log.produce(phone, event(phone, occurred_at=at(-5), purposes=["event_reminder"]))
    )
    [stop] = await log.produce(phone, event(phone, "OptedOut", occurred_at=at(-2)), headers=[])
    await projector.handle([stop])
    state = await store.subject(phone)
    assert state is not None and state.opted_out and not state.opt_out_authenticated

    # A late older grant refolds the whole history from the table.
    await projector.handle(
        await log.produce(phone, event(phone, occurred_at=at(-4), purposes=["customer_support"]))
    )
    refolded = await store.subject(phone)
    assert refolded is not None and refolded.opted_out and not refolded.opt_out_authenticated
    rows = {r["type"]: r["authenticated"] for r in await events_rows(store, phone)}
    assert rows == {"ConsentGranted": True, "OptedOut": False}

    # The person's own STOP, signed as inbound signs it, is proved.
    await projector.handle(await log.produce(phone, event(phone, "OptedOut", occurred_at=at(-1))))
    signed = await store.subject(phone)
    assert signed is not None and signed.opted_out and signed.opt_out_authenticated


async def test_the_signing_cutover_names_positions_past_every_record_so_far(
    stack: Stack, log: Log, phone: str
) -> None:
    [record] = await log.produce(phone, event(phone))

    printed = setting(await current_ends(stack.kafka_bootstrap))

    # Other tests may write meanwhile: at least up to this record, never before it.
    assert parse_positions(printed)[record.partition] > record.offset
