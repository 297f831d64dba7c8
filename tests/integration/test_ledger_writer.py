"""The consent ledger on the real broker and PostgreSQL (docs/erasure.md, section 3):
every accepted event once, sealed per person, chained per partition across a
restart, and unreadable once the person is erased."""

import functools
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from services.consent.erasure_job import ErasureJob
from services.consent.ledger.entries import event_sealable, logged_from
from services.consent.rebuild import (
    RebuildRefusedError,
    Rebuilt,
    rebuild_states,
    rebuild_states_from_ledger,
)
from services.consent.store import ConsentStore
from services.consent.suppressions import suppression_list
from shared.consent.state import LoggedEvent
from shared.contract.events import ConsentEvent
from shared.db.pool import open_pool
from shared.erasure.data_keys import Erased
from shared.erasure.settings import ErasureSettings
from shared.kafka.clients import durable_producer
from shared.ledger.entries import NOTHING, check_chain, open_entry
from tests.support.eventually import eventually
from tests.support.kafka import private_topics, produce
from tests.support.ledgers import LedgerWriting, Read, ledger_entries
from tests.support.private_db import private_database
from tests.support.records import consent_event, unique_phone
from tests.support.signing import ERASURE_INDEX, SIGNING_ENV, TRUST, signed_headers
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(stack: Stack) -> AsyncIterator[Any]:
    async with private_database(stack) as url:
        db = await open_pool(url)
        yield db
        await db.close()


@pytest.fixture
def erasure(monkeypatch: pytest.MonkeyPatch) -> ErasureSettings:
    for name, value in SIGNING_ENV.items():
        monkeypatch.setenv(name, value)
    return ErasureSettings()


def writing(
    stack: Stack, pool: Any, erasure: ErasureSettings, names: dict[str, str]
) -> LedgerWriting:
    """One instance of the consent ledger's writer over the test's topics."""
    return LedgerWriting(
        stack.kafka_bootstrap,
        pool,
        erasure,
        source=names["source"],
        ledger=names["ledger"],
        group=names["group"],
        describe=functools.partial(event_sealable, trust=TRUST),
    )


async def entries_once(stack: Stack, ledger: str, count: int) -> Read:
    async def read() -> Read:
        return await ledger_entries(stack.kafka_bootstrap, ledger)

    return await eventually(read, lambda found: len(found) >= count, timeout=30)


async def test_the_ledger_keeps_each_event_once_sealed_and_chained(
    stack: Stack, pool: Any, erasure: ErasureSettings
) -> None:
    tag = uuid.uuid4().hex[:8]
    names = {"source": f"t-{tag}-events", "ledger": f"t-{tag}-ledger", "group": f"t-{tag}"}
    anna, boris = unique_phone(), unique_phone()
    at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    first = [consent_event(p, occurred_at=at) for p in (anna, boris, anna)]
    later = [consent_event(p, occurred_at=at) for p in (boris, anna)]
    topics: dict[str, dict[str, str]] = {names["source"]: {}, names["ledger"]: {}}
    async with private_topics(stack.kafka_bootstrap, topics):
        await produce(stack.kafka_bootstrap, names["source"], [(e["subject"], e) for e in first])
        await produce(stack.kafka_bootstrap, names["source"], [(anna, b"not json")])
        async with writing(stack, pool, erasure, names):
            await entries_once(stack, names["ledger"], 3)
        # Another instance takes over: it chains on from what the first committed.
        await produce(stack.kafka_bootstrap, names["source"], [(e["subject"], e) for e in later])
        async with writing(stack, pool, erasure, names) as second:
            entries = await entries_once(stack, names["ledger"], 5)
            keys = await second.keys.for_reading({e.pseudonyms[0] for _, _, e in entries})

            assert len(entries) == 5, "each accepted event once; the unusable one not at all"
            for partition in {p for p, _, _ in entries}:
                mine = sorted((o, e) for p, o, e in entries if p == partition)
                checked = check_chain(mine)
                assert checked.intact and checked.entries == len(mine)
                assert all(e.partition == partition for _, e in mine), "partition for partition"
            opened = {}
            for _, _, entry in entries:
                content = open_entry(entry, keys)
                assert isinstance(content, bytes)
                logged = logged_from(entry, content)
                opened[logged.event.event_id] = logged
                raw = entry.model_dump_json()
                assert anna not in raw and boris not in raw and logged.event.event_id not in raw
            assert set(opened) == {e["event_id"] for e in first + later}
            assert opened[first[0]["event_id"]].event == ConsentEvent.model_validate(first[0])

            # Erased: every entry about Anna is unreadable, Boris's are not.
            store = ConsentStore(pool, ERASURE_INDEX)
            await store.apply(
                names["source"],
                [logged_erasure(anna, offset=100)],
                {0: 101},
            )
            job = ErasureJob(pool, ERASURE_INDEX, timedelta(0), keys=second.keys)
            [done] = await job.erase_due()
            assert done.keys_deleted == 1
            after = await second.keys.for_reading({e.pseudonyms[0] for _, _, e in entries})
            anna_key = ERASURE_INDEX.of(anna)
            for _, _, entry in entries:
                content = open_entry(entry, after)
                if entry.pseudonyms[0] == anna_key:
                    assert content == Erased(anna_key)
                else:
                    assert isinstance(content, bytes)

            # A record naming Anna met from now on keeps its place, empty: one of her
            # erased past, and one appended after the erasure alike, and she gets no
            # key again.
            erased_at = await pool.fetchval("SELECT max(erased_at) FROM consent.suppression")
            old, new = (consent_event(anna, occurred_at=at) for _ in range(2))
            stamp = int((erased_at - timedelta(minutes=1)).timestamp() * 1000)
            await send_at(stack, names["source"], anna, old, stamp)
            await produce(stack.kafka_bootstrap, names["source"], [(anna, new)])
            entries = await entries_once(stack, names["ledger"], 7)
            [partition] = {e.partition for _, _, e in entries if e.pseudonyms[0] == anna_key}
            latest = [e for p, _, e in sorted(entries) if p == partition][-2:]
            assert [e.pseudonyms[0] for e in latest] == [anna_key, anna_key]
            reread = await second.keys.for_reading({anna_key})
            assert reread == {anna_key: Erased(anna_key)}
            assert [e.sealed for e in latest] == [NOTHING, NOTHING]
            assert all(open_entry(e, reread) == Erased(anna_key) for e in latest)
            # Each source record once, even with the batch handed over again.
            assert len({(e.partition, e.offset) for _, _, e in entries}) == len(entries)


async def send_at(stack: Stack, topic: str, key: str, body: dict[str, Any], stamp: int) -> None:
    """Produces `body` with the broker time `stamp` (the test's topics keep CreateTime)."""
    producer = durable_producer(stack.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            value=orjson.dumps(body),
            key=key.encode(),
            timestamp_ms=stamp,
            headers=signed_headers(orjson.dumps(body)),
        )
    finally:
        await producer.stop()


def logged_erasure(subject: str, offset: int) -> LoggedEvent:
    body = consent_event(
        subject,
        "ErasureRequested",
        source="erasure_cli",
        evidence={"requested_by": "dpo", "reason": "test"},
        occurred_at=(datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
    )
    return LoggedEvent.from_log(ConsentEvent.model_validate(body), datetime.now(UTC), 0, offset)


async def test_a_rebuild_from_the_ledger_equals_one_from_the_log_and_forgets_the_erased(
    stack: Stack, pool: Any, erasure: ErasureSettings
) -> None:
    tag = uuid.uuid4().hex[:8]
    names = {"source": f"t-{tag}-events", "ledger": f"t-{tag}-ledger", "group": f"t-{tag}"}
    anna, boris = unique_phone(), unique_phone()
    at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    events = [
        consent_event(anna, occurred_at=at),
        consent_event(boris, occurred_at=at),
        consent_event(boris, "OptedOut", occurred_at=at),
    ]
    topics: dict[str, dict[str, str]] = {names["source"]: {}, names["ledger"]: {}}
    async with private_topics(stack.kafka_bootstrap, topics):
        await produce(stack.kafka_bootstrap, names["source"], [(e["subject"], e) for e in events])
        async with writing(stack, pool, erasure, names) as running:
            await entries_once(stack, names["ledger"], 3)

            async def from_ledger() -> Rebuilt:
                return await rebuild_states_from_ledger(
                    stack.kafka_bootstrap,
                    running.keys,
                    writer_group=names["group"],
                    ledger=names["ledger"],
                    topic=names["source"],
                    suppression=await suppression_list(pool, ERASURE_INDEX),
                )

            from_log = await rebuild_states(
                stack.kafka_bootstrap, trust=TRUST, topic=names["source"]
            )
            rebuilt = await eventually(from_ledger, lambda r: len(r.states) == 2, timeout=20)
            assert rebuilt.states == from_log.states
            assert rebuilt.positions == from_log.positions

            # Anna erased: her entries stay, closed; the rebuild counts and skips them.
            store = ConsentStore(pool, ERASURE_INDEX)
            await store.apply(names["source"], [logged_erasure(anna, offset=100)], {0: 101})
            await ErasureJob(pool, ERASURE_INDEX, timedelta(0), keys=running.keys).erase_due()
            after = await from_ledger()
            assert set(after.states) == {boris}
            assert after.erased == 1
            assert after.states[boris] == from_log.states[boris]

            # A forged entry breaks the chain: the rebuild refuses to fold the ledger.
            [(_, _, genuine)] = [
                e
                for e in await ledger_entries(stack.kafka_bootstrap, names["ledger"])
                if e[2].pseudonyms[0] == ERASURE_INDEX.of(boris)
            ][:1]
            forged = genuine.model_copy(update={"facts": {"type": "OptedIn"}})
            await produce(
                stack.kafka_bootstrap,
                names["ledger"],
                [(None, forged.model_dump_json().encode())],
                sign=False,
            )
            with pytest.raises(RebuildRefusedError, match="the chain breaks"):
                await from_ledger()
