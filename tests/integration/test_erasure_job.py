"""Carrying out an erasure on the real PostgreSQL (docs/erasure.md, section 5): the
person's rows and keys go in one transaction, a suppression row per identifier stays,
and neither a lagging projector nor a rebuild writes their past back."""

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.consent.erasure_job import ErasureJob
from services.consent.rebuild import rebuild_states_from_table
from services.consent.store import ConsentStore
from shared.consent.state import LoggedEvent, Status
from shared.contract.events import ConsentEvent
from shared.db.pool import open_pool
from tests.support.erased_rows import CONSENT_TABLES, rows_naming
from tests.support.private_db import private_database
from tests.support.records import consent_event, unique_phone
from tests.support.signing import ERASURE_INDEX
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

TOPIC = "consent.events.v1"


@pytest.fixture
async def pool(stack: Stack) -> AsyncIterator[Any]:
    async with private_database(stack) as url:
        db = await open_pool(url)
        yield db
        await db.close()


class Log:
    """Hands the store events as the projector would, at increasing offsets."""

    def __init__(self, store: ConsentStore) -> None:
        self.store = store
        self.offset = 0

    async def apply(self, *bodies: dict[str, Any], at: datetime) -> list[LoggedEvent]:
        logged = []
        for body in bodies:
            logged.append(
                LoggedEvent.from_log(ConsentEvent.model_validate(body), at, 0, self.offset)
            )
            self.offset += 1
        await self.store.apply(TOPIC, logged, {0: self.offset})
        return logged

    async def again(self, logged: list[LoggedEvent]) -> None:
        """The same records once more, as a consumer that lost its position meets them."""
        await self.store.apply(TOPIC, logged, {0: self.offset})


def bsuid() -> str:
    return f"US.{secrets.randbelow(10**19):019d}"


async def test_an_erasure_deletes_the_person_and_keeps_only_the_fact(pool: Any) -> None:
    store = ConsentStore(pool, ERASURE_INDEX)
    log = Log(store)
    phone, other_id, bystander = unique_phone(), bsuid(), unique_phone()
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    past = await log.apply(
        consent_event(phone, "ConsentGranted", occurred_at=before.isoformat()),
        consent_event(
            phone,
            "IdentityLinked",
            linked=other_id,
            source="whatsapp_webhook",
            evidence={"webhook": "contacts"},
            occurred_at=before.isoformat(),
        ),
        consent_event(phone, "OptedOut", occurred_at=before.isoformat()),
        consent_event(
            other_id,
            "ErasureRequested",
            source="erasure_cli",
            evidence={"requested_by": "dpo@example.com", "reason": "Art. 17"},
            occurred_at=before.isoformat(),
        ),
        consent_event(bystander, "ConsentGranted", occurred_at=before.isoformat()),
        at=before,
    )
    request = past[3].event.event_id
    await pool.execute(
        "INSERT INTO consent.data_keys (pseudonym, master_key_id, wrapped_key) "
        "VALUES ($1, 'k', '\\x00'), ($2, 'k', '\\x00'), ($3, 'k', '\\x00')",
        ERASURE_INDEX.of(phone),
        ERASURE_INDEX.of(other_id),
        ERASURE_INDEX.of(bystander),
    )
    assert (await store.subject(phone)) is not None

    job = ErasureJob(pool, ERASURE_INDEX, grace=timedelta(hours=1))
    assert await job.erase_due() == [], "the grace has not passed"
    job.grace = timedelta(0)
    [erased] = await job.erase_due()

    assert (erased.erasure_event_id, erased.first_time) == (request, True)
    assert (erased.identifiers, erased.events_deleted, erased.keys_deleted) == (2, 4, 2)
    assert await rows_naming(pool, phone, other_id) == dict.fromkeys(CONSENT_TABLES, 0)
    kept = await pool.fetch("SELECT pseudonym, erasure_event_id FROM consent.suppression")
    assert {(r["pseudonym"], r["erasure_event_id"]) for r in kept} == {
        (ERASURE_INDEX.of(phone), request),
        (ERASURE_INDEX.of(other_id), request),
    }
    keys = {r["pseudonym"] for r in await pool.fetch("SELECT pseudonym FROM consent.data_keys")}
    assert keys == {ERASURE_INDEX.of(bystander)}
    assert (await store.subject(bystander)) is not None, "only the person is erased"
    assert await job.erase_due() == [], "nothing left to erase"

    # A consumer meeting the person's records again writes nothing back but their
    # link (the erasure might not have known it): applied, it marks them, and the
    # next round erases it.
    await log.again(past[:4])
    assert (await rows_naming(pool, phone, other_id))["events"] == 1
    relinked = await store.subject(other_id)
    assert relinked is not None and relinked.erasure_event_id == request
    [again_linked] = await job.erase_due()
    assert (again_linked.first_time, again_linked.events_deleted) == (False, 1)
    assert (await rows_naming(pool, phone, other_id))["events"] == 0
    assert await store.subject(phone) is None

    # A record appended after the erasure is new, but cannot make the gate send.
    after = datetime.now(UTC) + timedelta(minutes=1)
    await log.apply(consent_event(phone, "ConsentGranted", occurred_at=after.isoformat()), at=after)
    state = await store.subject(phone)
    assert state is not None
    assert (state.status, state.erasure_event_id) == (Status.OPTED_OUT, request)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        rebuilt = await rebuild_states_from_table(conn, index=ERASURE_INDEX)
    assert rebuilt.states[phone].erasure_event_id == request, "a rebuild marks it too"
    assert rebuilt.states[bystander].status is Status.OPTED_IN
    # ... and is erased at the next round, under the same request.
    [again] = await job.erase_due()
    assert (again.erasure_event_id, again.first_time, again.events_deleted) == (request, False, 1)
    assert (await rows_naming(pool, phone))["events"] == 0


async def test_the_log_stays_append_only_outside_an_erasure(pool: Any) -> None:
    store = ConsentStore(pool, ERASURE_INDEX)
    await Log(store).apply(consent_event(unique_phone()), at=datetime.now(UTC))
    # Even the owner, and even with the erasure's switch set by hand, may update nothing.
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('consent.erasing', 'on', true)")
        with pytest.raises(Exception, match="append-only: UPDATE refused"):
            await conn.execute("UPDATE consent.events SET type = type")
    with pytest.raises(Exception, match="append-only: DELETE refused"):
        await pool.execute("DELETE FROM consent.events")


async def test_only_a_recorded_request_erases_and_only_its_person(pool: Any) -> None:
    """The service's role holds EXECUTE on consent.erase_person: it must not be able to
    erase someone nobody asked to erase."""
    store = ConsentStore(pool, ERASURE_INDEX)
    log = Log(store)
    asker, bystander = unique_phone(), unique_phone()
    at = datetime.now(UTC) - timedelta(minutes=5)
    [_, request, _] = await log.apply(
        consent_event(asker, occurred_at=at.isoformat()),
        consent_event(
            asker,
            "ErasureRequested",
            source="erasure_api",
            evidence={"requested_by": "dpo", "reason": "test"},
            occurred_at=at.isoformat(),
        ),
        consent_event(bystander, occurred_at=at.isoformat()),
        at=at,
    )
    erase = "SELECT consent.erase_person($1::text[], $2::text[], $3, $4)"
    for identifiers, event_id in (
        ([asker, bystander], request.event.event_id),  # someone else slipped in
        ([bystander], "no-such-request"),  # no request at all
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await pool.fetchval(
                erase, identifiers, [ERASURE_INDEX.of(i) for i in identifiers], event_id, at
            )
    assert await store.subject(bystander) is not None
    assert await pool.fetchval("SELECT count(*) FROM consent.suppression") == 0
