"""The audit from the ledgers (--from-ledger) on the real broker and PostgreSQL: both
ledger writers copy private topics of this test's own, decisions are written as the
dispatcher writes them, and the audit read from the ledgers (with the requests from
their topic) judges them as the audit of the topics does. Once a person is erased,
their past stays in the ledgers, closed: still clean, counted as an erased subject's."""

import functools
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from services.audit.cli import AuditOptions, AuditRun, run_audit
from services.audit.ledger_read import FromLedger, Ledgers
from services.audit.replay import Topics
from services.consent.erasure_job import ErasureJob
from services.consent.ledger.entries import decision_sealable, event_sealable
from services.consent.store import ConsentStore
from shared.consent.state import LoggedEvent
from shared.contract.decisions import Decision, DispatchDecision, Reason
from shared.contract.events import ConsentEvent
from shared.db.pool import open_pool
from shared.db.roles import without_role_urls
from shared.erasure.settings import ErasureSettings
from shared.kafka.clients import end_offsets
from shared.kafka.security import security_options
from shared.topics import (
    CONSENT_EVENTS,
    CONSENT_LEDGER,
    DECISIONS_LEDGER,
    MESSAGES_DECISIONS,
    MESSAGES_REQUESTS,
)
from tests.support.eventually import eventually
from tests.support.kafka import private_topics, produce
from tests.support.ledgers import LedgerWriting, ledger_entries
from tests.support.private_db import private_database
from tests.support.records import consent_event, consent_granted, send_request, unique_phone
from tests.support.services import ROOT
from tests.support.signing import ERASURE_INDEX, SIGNING_ENV, TRUST
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


@dataclass
class Private:
    """This test's topics, database and keys."""

    stack: Stack
    pool: Any
    url: str
    erasure: ErasureSettings
    topics: Topics
    ledgers: Ledgers
    prefix: str

    async def produce(self, topic: str, body: dict[str, Any], key: str) -> None:
        await produce(self.stack.kafka_bootstrap, topic, [(key, body)])

    async def decide(
        self, asked: dict[str, Any], decision: Decision, reason: Reason, consent: str | None
    ) -> None:
        """As the dispatcher: the consent log's end offsets as the fence, then decided."""
        fence = await self._fence()
        record = DispatchDecision(
            request_id=asked["request_id"],
            recipient=asked["recipient"],
            purpose=asked["purpose"],
            decision=decision,
            reason=reason,
            consent_event_id=consent,
            decided_at=datetime.now(UTC),
            fence={str(p): o for p, o in sorted(fence.items())},
        )
        body = record.model_dump(mode="json")
        await self.produce(self.topics.decisions, body, asked["recipient"])

    async def _fence(self) -> dict[int, int]:
        reader = AIOKafkaConsumer(
            bootstrap_servers=self.stack.kafka_bootstrap,
            isolation_level="read_committed",
            **security_options(),
        )
        await reader.start()
        try:
            return await end_offsets(reader, self.topics.events)
        finally:
            await reader.stop()

    async def audit(self, out: Path, *, strict: bool = False) -> AuditRun:
        return await run_audit(
            AuditOptions(
                bootstrap=self.stack.kafka_bootstrap,
                trust=TRUST,
                out=out,
                settle=timedelta(0),
                strict=strict,
                progress=False,
                topics=self.topics,
                from_ledger=FromLedger(self.url, self.erasure, self.ledgers),
            )
        )

    def command(self, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
        """`python -m services.audit --from-ledger` on these topics and this database."""
        where = ["--bootstrap", self.stack.kafka_bootstrap, "--out", str(out), "--no-progress"]
        return subprocess.run(
            [sys.executable, "-m", "services.audit", "--from-ledger", *where, *args],
            cwd=ROOT,
            env={
                **without_role_urls(os.environ),
                **SIGNING_ENV,
                "KAFKA_TOPIC_PREFIX": self.prefix,
                "AUDIT_DATABASE_URL": self.url,
                "DISPATCHER_QUIET_HOURS": '{"default": "00:00-00:00"}',
            },
            capture_output=True,
            text=True,
            timeout=120,
        )

    def writers(self) -> tuple[LedgerWriting, LedgerWriting]:
        tag = self.prefix
        common = {"bootstrap": self.stack.kafka_bootstrap, "pool": self.pool}
        events = LedgerWriting(
            **common,
            erasure=self.erasure,
            source=self.topics.events,
            ledger=self.ledgers.events,
            group=f"{tag}consent-ledger",
            describe=functools.partial(event_sealable, trust=TRUST),
        )
        decisions = LedgerWriting(
            **common,
            erasure=self.erasure,
            source=self.topics.decisions,
            ledger=self.ledgers.decisions,
            group=f"{tag}consent-ledger-decisions",
            describe=decision_sealable,
        )
        return events, decisions


@pytest.fixture
async def private(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Private]:
    for name, value in SIGNING_ENV.items():
        monkeypatch.setenv(name, value)
    # The contract's names under a prefix of this test's own, as KAFKA_TOPIC_PREFIX
    # gives them to the command.
    prefix = f"test.audit-ledger.{uuid.uuid4().hex[:8]}."
    topics = Topics(*(prefix + t for t in (CONSENT_EVENTS, MESSAGES_REQUESTS, MESSAGES_DECISIONS)))
    ledgers = Ledgers(prefix + CONSENT_LEDGER, prefix + DECISIONS_LEDGER)
    configs: dict[str, dict[str, str]] = {
        topics.events: {"message.timestamp.type": "LogAppendTime"},
        topics.requests: {},
        topics.decisions: {},
        ledgers.events: {},
        ledgers.decisions: {},
    }
    async with (
        private_topics(stack.kafka_bootstrap, configs),
        private_database(stack) as url,
    ):
        pool = await open_pool(url)
        try:
            yield Private(stack, pool, url, ErasureSettings(), topics, ledgers, prefix)
        finally:
            await pool.close()


async def entries_in(private: Private, ledger: str, count: int) -> None:
    async def read() -> int:
        return len(await ledger_entries(private.stack.kafka_bootstrap, ledger))

    await eventually(read, lambda n: n >= count, timeout=30)


def erasure_of(subject: str) -> dict[str, Any]:
    return consent_event(
        subject,
        "ErasureRequested",
        source="erasure_cli",
        evidence={"requested_by": "dpo", "reason": "test"},
        occurred_at=datetime.now(UTC).isoformat(),
    )


async def erase(private: Private, body: dict[str, Any], keys: Any) -> None:
    """As the consent service: the request recorded in the projection, then the erasure
    job (no grace) deletes the person's keys and suppresses their identifiers."""
    logged = LoggedEvent.from_log(ConsentEvent.model_validate(body), datetime.now(UTC), 0, 1000)
    await ConsentStore(private.pool, ERASURE_INDEX).apply(private.topics.events, [logged], {0: 1})
    [done] = await ErasureJob(private.pool, ERASURE_INDEX, timedelta(0), keys=keys).erase_due()
    assert done.keys_deleted >= 1


async def test_the_ledgers_audit_clean_before_and_after_an_erasure(
    private: Private, tmp_path: Path
) -> None:
    anna, boris = unique_phone(), unique_phone()
    t = private.topics
    events_writer, decisions_writer = private.writers()
    async with events_writer, decisions_writer:
        grants = {p: consent_granted(p) for p in (anna, boris)}
        for subject, grant in grants.items():
            await private.produce(t.events, grant, subject)
        for subject, grant in grants.items():
            asked = send_request(subject)
            await private.produce(t.requests, asked, subject)
            await private.decide(asked, Decision.DISPATCHED, Reason.CONSENTED, grant["event_id"])
        marketing = send_request(boris, "marketing")
        await private.produce(t.requests, marketing, boris)
        await private.decide(marketing, Decision.DROPPED, Reason.PURPOSE_NOT_PERMITTED, None)
        # Anna asks to be erased: from then on every send to her is dropped.
        stop = erasure_of(anna)
        await private.produce(t.events, stop, anna)
        after = send_request(anna)
        await private.produce(t.requests, after, anna)
        await private.decide(after, Decision.DROPPED, Reason.OPTED_OUT, stop["event_id"])
        await entries_in(private, private.ledgers.events, 3)
        await entries_in(private, private.ledgers.decisions, 4)

        before = await private.audit(tmp_path / "before")

        await erase(private, stop, events_writer.keys)
        erased = await private.audit(tmp_path / "after", strict=True)
        command = private.command(tmp_path / "command", "--strict")

    report = before.report
    assert (report.violations, report.warnings, report.exit_code) == (0, 0, 0), report.findings
    assert (report.recomputed.decisions, report.recomputed.agreeing) == (4, 4)
    assert report.scope.source == "ledgers" and report.from_ledgers is not None
    assert [(r.entries, r.erased, r.intact) for r in report.from_ledgers.ledgers] == [
        (3, 0, True),
        (4, 0, True),
    ]

    report = erased.report
    assert (report.violations, report.warnings, report.exit_code) == (0, 0, 0), report.findings
    assert report.from_ledgers is not None
    events, decisions = report.from_ledgers.ledgers
    assert (events.entries, events.erased, events.opened) == (3, 2, 1), "her grant and request"
    assert (decisions.entries, decisions.erased, decisions.opened) == (4, 2, 2)
    assert events.intact and decisions.intact
    assert report.from_ledgers.requests_of_erased == 2, "her requests are still in the topic"
    assert (report.recomputed.decisions, report.recomputed.agreeing) == (2, 2), "Boris's"
    assert "chain intact" in (tmp_path / "after" / "audit.html").read_text(encoding="utf-8")

    assert command.returncode == 0, command.stdout + command.stderr
    assert "source     the ledgers" in command.stdout
    assert "2 erased (erased subject)" in command.stdout
    assert "0 violations, 0 warnings" in command.stdout


async def test_the_command_refuses_a_database_it_cannot_reach(
    private: Private, tmp_path: Path
) -> None:
    private.url = "postgresql://nobody:nothing@127.0.0.1:1/none"
    done = private.command(tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "cannot open the ledgers: cannot connect to the database" in done.stderr
