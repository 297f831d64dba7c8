"""Each service's PostgreSQL role can do what its SQL does and nothing it must not
(docs/security.md), on a private database migrated as `make infra-up` migrates.

The roles are the local cluster's (`deploy/local/postgres.sh start` makes them);
where the tests run on a database of someone else's, without them, the module is
skipped. What a role may do runs in a transaction that is rolled back, so the
checks leave nothing behind."""

import os
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.db.migrated import DatabaseNotMigratedError, open_migrated_pool, require_migrated
from shared.db.roles import API_URL, AUDIT_URL, DISPATCHER_URL, PROJECTOR_URL
from shared.settings import LOCAL_DATABASE_URL
from tests.support.db_roles import local_role_urls
from tests.support.private_db import database_of_our_own

pytestmark = pytest.mark.integration

ROLES = {
    "projector": PROJECTOR_URL,
    "api": API_URL,
    "dispatcher": DISPATCHER_URL,
    "audit": AUDIT_URL,
}
OWNER_URL = os.environ.get("DATABASE_URL") or LOCAL_DATABASE_URL

EVENT = """INSERT INTO consent.events
    (event_id, subject, type, occurred_at, log_time, topic, partition, "offset", payload)
    VALUES ('roles-test', '+79160000000', 'ConsentGranted', now(), now(), 'roles.test', 0, 0,
            '{}')"""
SUBJECT = """INSERT INTO consent.subjects (subject, status, state, version)
    VALUES ('+79160000000', 'unknown', '{}', 1)
    ON CONFLICT (subject) DO UPDATE SET version = EXCLUDED.version"""
TRACKING = """INSERT INTO consent.tracking (topic, partition, next_offset)
    VALUES ('roles.test', 0, 1)
    ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset"""
LINK = """INSERT INTO consent.identity_links (identifier, other, event_id)
    VALUES ('+79160000000', 'wa:1', 'roles-test') ON CONFLICT DO NOTHING"""
DECISION = """INSERT INTO dispatcher.decisions (request_id, decision, reason, decided_at,
    source_partition, source_offset, decision_json)
    VALUES ('roles-test', 'deferred', 'quiet_hours', now(), 0, 0, '{}')"""
DEFERRED = """INSERT INTO dispatcher.deferred (request_id, recipient, not_before, request_json,
    deferred_at) VALUES ('roles-test', '+79160000000', now(), '{}', now())"""
ACCESS = """INSERT INTO consent.access_log (at, principal, scope, subject, identifiers)
    VALUES (now(), 'roles-test', 'read', 'pseudonym', ARRAY['pseudonym'])"""
SEND = """INSERT INTO dispatcher.sends (request_id, status) VALUES ('roles-test', 'in_flight')"""
SEND_AGAIN = """UPDATE dispatcher.sends SET attempts = attempts + 1
    WHERE request_id = 'roles-test' AND status = 'in_flight'"""
# The request_id locks of services/dispatcher/request_locks.py, and the maintenance of
# the day partitions, which the dispatcher runs without any right to create or drop.
LOCK = "SELECT pg_advisory_xact_lock(1, hashtext('roles-test'))"
MAINTAIN = "SELECT * FROM dispatcher.maintain_partitions(7, 3)"
EVERY_TABLE = [
    "public.schema_migrations",
    "consent.events",
    "consent.subjects",
    "consent.tracking",
    "consent.identity_links",
    "consent.access_log",
    "dispatcher.decisions",
    "dispatcher.confirmations",
    "dispatcher.deferred",
    "dispatcher.sends",
    # A day partition (made by the migration or the maintenance, as the owner).
    "dispatcher.decisions_default",
]


@pytest.fixture(scope="module")
async def urls() -> AsyncIterator[dict[str, str]]:
    """The owner's and each role's URL of a private, migrated database."""
    async with database_of_our_own(OWNER_URL) as owner:
        by_variable = local_role_urls(owner)
        if not by_variable:
            pytest.skip("no service roles here: deploy/local/postgres.sh start makes them")
        yield {"owner": owner} | {role: by_variable[variable] for role, variable in ROLES.items()}


async def rolled_back(url: str, *statements: str) -> None:
    """Runs the statements as the URL's role in one transaction, then undoes them."""
    conn = await asyncpg.connect(url)
    try:
        transaction = conn.transaction()
        await transaction.start()
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await transaction.rollback()
    finally:
        await conn.close()


ALLOWED = [
    pytest.param("projector", [EVENT, SUBJECT, TRACKING, LINK], id="projector-projects"),
    pytest.param("projector", ["SELECT payload FROM consent.events"], id="projector-refolds"),
    pytest.param("api", ["SELECT state FROM consent.subjects"], id="api-reads-states"),
    pytest.param("api", ["SELECT payload FROM consent.events"], id="api-reads-history"),
    # Its one write: who read what (services/consent/access.py), appended.
    pytest.param("api", [ACCESS], id="api-records-its-reads"),
    pytest.param(
        "dispatcher",
        ["SELECT state FROM consent.subjects", "SELECT next_offset FROM consent.tracking"],
        id="dispatcher-reads-consent-state-and-tracking",
    ),
    pytest.param(
        "dispatcher",
        [
            DECISION,
            "UPDATE dispatcher.decisions SET decision = 'dispatched' WHERE request_id <> ''",
            "INSERT INTO dispatcher.confirmations VALUES ('opt-out', 'roles-test', now())",
            DEFERRED,
            "SELECT request_id FROM dispatcher.deferred FOR UPDATE SKIP LOCKED",
            "UPDATE dispatcher.deferred SET released_at = now()",
            "DELETE FROM dispatcher.deferred WHERE request_id = 'roles-test'",
            LOCK,
            SEND,
            SEND_AGAIN,
        ],
        id="dispatcher-writes-its-own-schema",
    ),
    pytest.param("dispatcher", [MAINTAIN], id="dispatcher-maintains-the-day-partitions"),
    *(
        pytest.param("audit", [f"SELECT count(*) FROM {table}"], id=f"audit-reads-{table}")
        for table in EVERY_TABLE
    ),
    *(
        pytest.param(role, ["SELECT version FROM public.schema_migrations"], id=f"{role}-checks")
        for role in ROLES
    ),
]


@pytest.mark.parametrize(("role", "statements"), ALLOWED)
async def test_role_may_do_what_its_service_does(
    urls: dict[str, str], role: str, statements: list[str]
) -> None:
    await rolled_back(urls[role], *statements)


def _denied(roles: list[str], statement: str, label: str) -> list[object]:
    return [pytest.param(role, statement, id=f"{role}-{label}") for role in roles]


EVERY_ROLE = list(ROLES)
DENIED = [
    # The log is append-only: nobody but the owner may change or empty it.
    *_denied(EVERY_ROLE, "UPDATE consent.events SET type = type", "update-events"),
    *_denied(EVERY_ROLE, "DELETE FROM consent.events", "delete-events"),
    *_denied(EVERY_ROLE, "TRUNCATE consent.events", "truncate-events"),
    # ... nor lift the trigger that refuses even the owner.
    *_denied(EVERY_ROLE, "DROP TRIGGER events_append_only ON consent.events", "drop-trigger"),
    *_denied(
        EVERY_ROLE,
        "ALTER TABLE consent.events DISABLE TRIGGER events_append_only",
        "disable-trigger",
    ),
    *_denied(EVERY_ROLE, "CREATE TABLE consent.intruder (i int)", "create-in-consent"),
    *_denied(EVERY_ROLE, "CREATE TABLE dispatcher.intruder (i int)", "create-in-dispatcher"),
    *_denied(EVERY_ROLE, "DELETE FROM public.schema_migrations", "forget-migrations"),
    # The query API only reads, but for appending its access records.
    *_denied(["api"], EVENT, "insert-events"),
    *_denied(["api"], SUBJECT, "write-subjects"),
    *_denied(["api"], TRACKING, "write-tracking"),
    *_denied(["api"], LINK, "write-links"),
    *_denied(["api"], DECISION, "write-decisions"),
    *_denied(["api"], "UPDATE consent.access_log SET principal = ''", "rewrite-access-log"),
    *_denied(["api"], "DELETE FROM consent.access_log", "erase-access-log"),
    *_denied(["projector", "dispatcher", "audit"], ACCESS, "forge-access-log"),
    # The dispatcher reads consent state and writes its own schema only, as its SQL does.
    *_denied(["dispatcher"], EVENT, "insert-events"),
    *_denied(["dispatcher"], SUBJECT, "insert-subjects"),
    *_denied(["dispatcher"], "UPDATE consent.subjects SET version = 0", "update-subjects"),
    *_denied(["dispatcher"], TRACKING, "write-tracking"),
    *_denied(["dispatcher"], "DELETE FROM dispatcher.decisions", "delete-decisions"),
    *_denied(["dispatcher"], "TRUNCATE dispatcher.sends", "truncate-sends"),
    *_denied(["dispatcher"], "SELECT payload FROM consent.events", "read-events"),
    # Days go only as the maintenance decides: past the horizon, on the clock's today.
    *_denied(["dispatcher"], "DROP TABLE dispatcher.decisions_default", "drop-a-partition"),
    *_denied(
        ["dispatcher"],
        "CREATE TABLE dispatcher.decisions_p20991231 PARTITION OF dispatcher.decisions"
        " FOR VALUES FROM ('2099-12-31') TO ('2100-01-01')",
        "create-a-partition",
    ),
    *_denied(
        ["dispatcher"],
        "SELECT * FROM dispatcher.maintain_partitions_as_of(now() + interval '1 year', 1, 1)",
        "maintain-as-of-another-day",
    ),
    *_denied(["projector", "api", "audit"], MAINTAIN, "maintain-the-day-partitions"),
    # The projector has no business in the dispatcher's schema, nor in deleting states.
    *_denied(["projector"], DECISION, "write-decisions"),
    *_denied(["projector"], "DELETE FROM consent.subjects", "delete-subjects"),
    # The audit reads only.
    *_denied(["audit"], EVENT, "insert-events"),
    *_denied(["audit"], SUBJECT, "write-subjects"),
    *_denied(["audit"], "UPDATE consent.tracking SET next_offset = 0", "update-tracking"),
    *_denied(["audit"], DECISION, "write-decisions"),
    *_denied(["audit"], "DELETE FROM dispatcher.sends", "delete-sends"),
]


@pytest.mark.parametrize(("role", "statement"), DENIED)
async def test_role_may_not_do_what_its_service_must_not(
    urls: dict[str, str], role: str, statement: str
) -> None:
    with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError) as refused:
        await rolled_back(urls[role], statement)
    # A privilege refused it, not the append-only trigger (same SQLSTATE).
    assert "append-only" not in str(refused.value)


@pytest.mark.parametrize("role", EVERY_ROLE)
async def test_no_service_role_can_grant_itself_more(urls: dict[str, str], role: str) -> None:
    conn = await asyncpg.connect(urls[role])
    try:
        powers = await conn.fetchrow(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles"
            " WHERE rolname = current_user"
        )
        owns = await conn.fetchval(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname IN ('consent', 'dispatcher') AND pg_has_role(c.relowner, 'USAGE')"
        )
    finally:
        await conn.close()
    assert not any(powers.values())
    assert owns == 0


async def test_the_owner_keeps_its_rights_and_the_trigger_still_refuses_it(
    urls: dict[str, str],
) -> None:
    with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError, match="append-only"):
        await rolled_back(urls["owner"], EVENT, "UPDATE consent.events SET type = type")
    with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError, match="append-only"):
        await rolled_back(urls["owner"], "TRUNCATE consent.events")


@pytest.mark.parametrize("role", EVERY_ROLE)
async def test_every_role_sees_the_schema_is_migrated(urls: dict[str, str], role: str) -> None:
    conn = await asyncpg.connect(urls[role])
    try:
        await require_migrated(conn)
    finally:
        await conn.close()


async def test_a_service_refuses_a_database_that_is_not_migrated() -> None:
    async with database_of_our_own(OWNER_URL, migrate=False) as url:
        with pytest.raises(DatabaseNotMigratedError, match="run make infra-up") as refused:
            await open_migrated_pool(url, max_size=1)
    assert "consent/001_events_subjects_tracking.sql" in str(refused.value)


async def test_a_service_refuses_a_schema_behind_its_code(urls: dict[str, str]) -> None:
    conn = await asyncpg.connect(urls["owner"])
    try:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute(
                "DELETE FROM public.schema_migrations WHERE schema = 'dispatcher'"
                " AND version = '004'"
            )
            with pytest.raises(DatabaseNotMigratedError) as refused:
                await require_migrated(conn)
            assert "dispatcher/004_service_roles.sql" in str(refused.value)
        finally:
            await transaction.rollback()
    finally:
        await conn.close()
