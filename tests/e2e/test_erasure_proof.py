"""The proof of an erasure (issue 16's "done when"; docs/erasure.md, section 10).

A system of its own runs beside the suite's, in ERASURE_MODE, on topics under a
prefix of its own and a database of its own, with the days of its deadline
compressed into seconds: its bounded topics keep records for 3 seconds (not 7 to
21 days) and the erasure is carried out at once (not after a day's grace). A
person with grants, an opt-out and its confirmation, decisions and a dead letter
asks to be erased; then:
- none of their clear data is readable: not in any topic (every record of every
  topic read from the beginning), not in any table of either schema, not in the
  ledgers, whose entries about them are there, chained, and do not open;
- a send to them is refused, and a grant replayed by a producer brings nothing
  back: their STOP is still honoured;
- the audit of the period, from the ledgers, is clean, their records counted as
  an erased subject's."""

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from shared.db.pool import open_pool
from shared.erasure.data_keys import Erased
from shared.erasure.mode import BOUNDED_TOPICS, ErasureMode
from shared.kafka.range_reader import range_consumer, read_ranges, whole_topic
from shared.kafka.security import security_options
from shared.kafka.topic_configs import enforce_configs
from shared.kafka.topic_specs import TopicSpec, topic_specs
from shared.ledger.entries import check_chain, open_entry
from shared.topics import (
    CONSENT_EVENTS,
    LEDGERS,
    MESSAGES_DECISIONS,
    MESSAGES_REQUESTS,
    PREFIX,
)
from tests.conftest import ALWAYS_OPEN, SECRETS
from tests.support.eventually import eventually
from tests.support.kafka import TopicReader, produce
from tests.support.ledgers import data_keys, ledger_entries
from tests.support.prefixed_topics import deleted_after, ours, provision
from tests.support.private_db import private_database
from tests.support.records import consent_granted, send_request, unique_phone
from tests.support.services import ROOT, ServiceProcess
from tests.support.signing import ERASURE_INDEX, SIGNING_ENV
from tests.support.stack import Stack
from tests.support.webhooks import signed
from tests.support.whatsapp_world import message_from, user_id

pytestmark = pytest.mark.e2e

# The suite's system answers on 8081-8083 and make chaos's on 18081-18083; this one
# beside them (admin ports 1000 above).
PORTS = {"inbound": 28081, "consent": 28082, "dispatcher": 28083}
KEPT_MS = 3000  # the compressed retention of every bounded topic


class System:
    """The three services on the prefixed topics and the private database."""

    def __init__(self, stack: Stack, prefix: str, database: str, log_dir: Path) -> None:
        env = {
            **ALWAYS_OPEN,
            **SECRETS,
            "KAFKA_TOPIC_PREFIX": prefix,
            "DATABASE_URL": database,
            "ERASURE_MODE": "on",
            "ERASURE_GRACE_SECONDS": "0",
            "ERASURE_JOB_INTERVAL_SECONDS": "1",
            # Consumer groups, and the ledger writers' transactional ids made from
            # them, of its own: shared with the suite's system, each would fence
            # the other's producers.
            "INBOUND_GROUP_ID": f"{prefix}inbound",
            "CONSENT_GROUP_ID": f"{prefix}consent-projector",
            "CONSENT_LEDGER_GROUP_ID": f"{prefix}consent-ledger",
            "CONSENT_DECISIONS_LEDGER_GROUP_ID": f"{prefix}consent-ledger-decisions",
            "DISPATCHER_GROUP_ID": f"{prefix}dispatcher",
        }
        self.prefix, self.database, self.log_dir = prefix, database, log_dir
        self.services = {
            name: ServiceProcess(name, stack, log_dir, env, port=port)
            for name, port in PORTS.items()
        }

    def topic(self, name: str) -> str:
        return ours(self.prefix, name)

    def url(self, name: str) -> str:
        return self.services[name].url

    def __enter__(self) -> "System":
        for service in self.services.values():
            service.start()
        for service in self.services.values():
            service.wait_ready()
        return self

    def __exit__(self, *_: object) -> None:
        for service in self.services.values():
            service.stop()


@pytest.fixture
async def system(stack: Stack, tmp_path: Path) -> AsyncIterator[System]:
    prefix = f"proof.{uuid.uuid4().hex[:8]}."
    async with deleted_after(stack, prefix), private_database(stack) as database:
        await provision(stack, prefix, "on")
        await compress_retention(stack, prefix)
        with System(stack, prefix, database, tmp_path) as running:
            yield running


async def compress_retention(stack: Stack, prefix: str) -> None:
    """The bounded topics keep records for seconds instead of days."""
    specs = [
        TopicSpec(
            ours(prefix, spec.name),
            {**spec.configs, "retention.ms": str(KEPT_MS), "segment.ms": "1000"},
        )
        for spec in topic_specs(ErasureMode.ON)
        if spec.name in BOUNDED_TOPICS
    ]
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap, **security_options())
    await admin.start()
    try:
        await enforce_configs(admin, specs, {s.name: 1 for s in specs})
    finally:
        await admin.close()


async def every_record(stack: Stack, topics: list[str]) -> list[Any]:
    """Every record of `topics` from the beginning (a consumer each: one that was
    assigned a topic asks the brokers about that topic only)."""
    found = []
    for topic in topics:
        consumer = range_consumer(stack.kafka_bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            ranges = await whole_topic(consumer, topic)
            async for records in read_ranges(consumer, ranges, max_records=1000):
                found.extend(records)
        finally:
            await consumer.stop()
    return found


def naming(records: list[Any], *identifiers: str) -> Iterator[Any]:
    for r in records:
        raw = (r.key or b"") + (r.value or b"") + b"".join(v or b"" for _, v in r.headers)
        if any(i.encode() in raw or i.lstrip("+").encode() in raw for i in identifiers):
            yield r


async def tables_naming(pool: Any, *identifiers: str) -> dict[str, int]:
    """Rows holding an identifier, in every table of both schemas."""
    tables = await pool.fetch(
        "SELECT schemaname, tablename FROM pg_tables WHERE schemaname IN ('consent', 'dispatcher')"
    )
    found = {}
    for row in tables:
        name = f"{row['schemaname']}.{row['tablename']}"
        where = " OR ".join(f"t::text LIKE '%' || ${i + 1} || '%'" for i in range(len(identifiers)))
        count = await pool.fetchval(f"SELECT count(*) FROM {name} t WHERE {where}", *identifiers)
        if count:
            found[name] = count
    return found


async def decisions_for(decisions: TopicReader, request_ids: set[str]) -> dict[str, Any]:
    """Read as they are published: the topic keeps them for seconds only."""
    await decisions.wait_for(lambda _: request_ids <= set(decided(decisions)))
    found = decided(decisions)
    return {i: found[i] for i in request_ids}


def decided(decisions: TopicReader) -> dict[str, Any]:
    return {v["request_id"]: v for v in decisions.values()}


async def test_an_erased_person_is_unreadable_everywhere_and_still_stopped(
    stack: Stack, system: System
) -> None:
    phone, bsuid = unique_phone(), user_id()
    bootstrap = stack.kafka_bootstrap
    decisions = await TopicReader(bootstrap, system.topic(MESSAGES_DECISIONS)).start()
    dead = await TopicReader(bootstrap, system.topic(MESSAGES_REQUESTS) + ".dlq").start()
    try:
        await _erase_and_prove(stack, system, phone, bsuid, decisions, dead)
    finally:
        await decisions.stop()
        await dead.stop()


async def _erase_and_prove(
    stack: Stack, system: System, phone: str, bsuid: str, decisions: TopicReader, dead: TopicReader
) -> None:
    bootstrap = stack.kafka_bootstrap

    async def post(body: dict[str, Any]) -> None:
        raw, headers = signed(body)
        async with httpx.AsyncClient(base_url=system.url("inbound")) as http:
            answer = await http.post("/webhooks/whatsapp", content=raw, headers=headers)
        assert answer.status_code == 200, answer.text

    async def state() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=system.url("consent")) as http:
            return (await http.get(f"/v1/subjects/{phone}/consent")).json()  # type: ignore[no-any-return]

    # Their history: linked identifiers, a grant, a dispatched reminder, a STOP and its
    # confirmation, and a request so broken that it went to the dead letters.
    await post(message_from("hello", phone=phone, bsuid=bsuid))
    await produce(bootstrap, system.topic(CONSENT_EVENTS), [(phone, consent_granted(phone))])
    await eventually(state, lambda s: s["status"] == "opted_in" and bsuid in s["identifiers"])
    reminder = send_request(phone)
    await produce(bootstrap, system.topic(MESSAGES_REQUESTS), [(phone, reminder)])
    first = await decisions_for(decisions, {reminder["request_id"]})
    assert first[reminder["request_id"]]["decision"] == "dispatched"
    await post(message_from("STOP", phone=phone, bsuid=bsuid))
    await eventually(state, lambda s: s["status"] == "opted_out")
    broken = b'{"recipient": "' + phone.encode() + b'", "request_id": '
    await produce(bootstrap, system.topic(MESSAGES_REQUESTS), [(phone, broken)])

    def confirmations(_: object) -> list[Any]:
        return [
            v
            for v in decisions.values()
            if v["purpose"] == "opt_out_confirmation" and v["recipient"] == phone
        ]

    await decisions.wait_for(lambda records: len(confirmations(records)) == 1)
    [confirmation] = confirmations(None)
    assert confirmation["decision"] == "dispatched"
    await dead.wait_for(lambda records: any(naming(records, phone)))

    # The request; carried out at once here (ERASURE_GRACE_SECONDS=0).
    async with httpx.AsyncClient(base_url=system.url("consent")) as http:
        answer = await http.post(f"/v1/subjects/{phone}/erasure", json={"reason": "DSR-10"})
    assert answer.status_code == 202, answer.text
    request = answer.json()["event_id"]
    asked_at = datetime.now(UTC)
    pool = await open_pool(system.database)
    try:
        await eventually(
            lambda: pool.fetchval(
                "SELECT count(*) FROM consent.erasures WHERE erasure_event_id = $1", request
            ),
            lambda n: n == 1,
            timeout=30,
        )
        # Past the dispatcher's horizon (7 days): its day partitions are dropped, as
        # its hourly maintenance drops them (compressed like the topics' days).
        await pool.fetch(
            "SELECT * FROM dispatcher.maintain_partitions_as_of($1, 7, 3)",
            asked_at + timedelta(days=9),
        )

        # Nothing of theirs readable in any topic, once retention has passed...
        everything = [system.topic(t.removeprefix(PREFIX)) for t in (*BOUNDED_TOPICS, *LEDGERS)]
        left = await eventually(
            lambda: every_record(stack, everything),
            lambda records: not any(naming(records, phone, bsuid)),
            timeout=60,
        )
        assert not list(naming(left, phone, bsuid))
        # ... nor in any table ...
        assert await tables_naming(pool, phone, bsuid, phone.lstrip("+")) == {}
        # ... while the ledgers keep their entries, chained, closed for good.
        person = {ERASURE_INDEX.of(phone), ERASURE_INDEX.of(bsuid)}
        keys = data_keys(pool)
        for ledger in LEDGERS:
            entries = await ledger_entries(bootstrap, system.topic(ledger.removeprefix(PREFIX)))
            theirs = [e for _, _, e in entries if person & set(e.pseudonyms)]
            assert theirs, f"{ledger} keeps their entries"
            for partition in {p for p, _, _ in entries}:
                assert check_chain((o, e) for p, o, e in entries if p == partition).intact
            found = await keys.for_reading({e.pseudonyms[0] for e in theirs})
            assert all(isinstance(open_entry(e, found), Erased) for e in theirs)
    finally:
        await pool.close()

    # Still stopped: a send is refused, and their old grant replayed changes nothing.
    again = send_request(phone)
    await produce(bootstrap, system.topic(MESSAGES_REQUESTS), [(phone, again)])
    refused = await decisions_for(decisions, {again["request_id"]})
    assert refused[again["request_id"]]["decision"] == "dropped"
    # The projector marks the state it folds with the erasure, and the next round of
    # the job (every second here) erases it again: a send in between or after is
    # dropped either way, never dispatched.
    await produce(bootstrap, system.topic(CONSENT_EVENTS), [(phone, consent_granted(phone))])
    asked = []
    for _ in range(6):
        asked.append(send_request(phone))
        await produce(bootstrap, system.topic(MESSAGES_REQUESTS), [(phone, asked[-1])])
        await asyncio.sleep(0.5)
    after = await decisions_for(decisions, {r["request_id"] for r in asked})
    verdicts = {(d["decision"], d["reason"], d["consent_event_id"]) for d in after.values()}
    assert verdicts <= {("dropped", "opted_out", request), ("dropped", "no_consent", None)}

    # The audit of the period, from the ledgers, is clean, warnings included; the
    # person's records are there, counted as an erased subject's, and chained.
    status, report = await audit_from_ledgers(stack, system)
    assert status == 0, report
    assert "erased (erased subject)" in report
    erased_entries = [
        int(line.split(" entries, ")[1].split(" erased")[0])
        for line in report.splitlines()
        if line.strip().startswith("ledger ")
    ]
    assert len(erased_entries) == 2 and all(n > 0 for n in erased_entries), report
    assert "chain intact" in report and "unreadable" in report


async def audit_from_ledgers(stack: Stack, system: System) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.audit",
        "--from-ledger",
        "--strict",
        "--out",
        str(system.log_dir / "audit"),
        cwd=ROOT,
        env={
            **os.environ,
            **SIGNING_ENV,
            **ALWAYS_OPEN,
            "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
            "KAFKA_TOPIC_PREFIX": system.prefix,
            "DATABASE_URL": system.database,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, output.decode()
