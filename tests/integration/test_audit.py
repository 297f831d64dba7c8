"""The audit on the real broker: recorded histories on real topics.

Each history is produced for fresh subjects of its own, with its decisions written
as the dispatcher writes them (fence: the consent log's end offsets read just
before; decided_at: after them). The planted violations go to a private copy of
the three topics (KAFKA_TOPIC_PREFIX for the command-line runs), deleted after:
no dispatcher reads them, and a later `make audit` of the local system never
meets these deliberate violations.

The last test drives the real dispatcher (services fixture) through a random
history of 10,000 requests and checks that the audit recomputes every decision."""

import asyncio
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import phonenumbers
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.audit.cli import AuditOptions, AuditRun, run_audit
from services.audit.findings import Finding, FindingKind, Severity
from services.audit.replay import Topics
from shared.contract.decisions import Decision, DispatchDecision, Reason
from shared.contract.purposes import OPT_OUT_CONFIRMATION
from shared.contract.requests import SendRequest
from shared.dispatch.quiet_hours import QuietHoursPolicy
from shared.dispatch.rules import Verdict
from shared.dispatch.timing import decide_in_time
from shared.kafka.clients import end_offsets
from shared.phone import mask_phone
from shared.topics import CONSENT_EVENTS, MESSAGES_DECISIONS, MESSAGES_REQUESTS
from tests.support.kafka import TopicReader, private_topics
from tests.support.records import consent_granted, opted_out, send_request, unique_phone
from tests.support.services import ROOT, ServiceProcess
from tests.support.signing import SIGNING_ENV, TRUST, signed_headers
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

DEADLINE = timedelta(seconds=1)  # the confirmation deadline for these histories

PREFIX = f"test.audit.{uuid.uuid4().hex[:8]}."
PRIVATE = Topics(
    events=PREFIX + CONSENT_EVENTS,
    requests=PREFIX + MESSAGES_REQUESTS,
    decisions=PREFIX + MESSAGES_DECISIONS,
)


@dataclass
class Planter:
    """Writes a history to the real topics as other systems and the dispatcher do."""

    bootstrap: str
    producer: AIOKafkaProducer
    reader: AIOKafkaConsumer
    ids: dict[str, set[str]] = field(default_factory=dict)  # subject -> planted ids

    def _note(self, subject: str, planted_id: str) -> None:
        self.ids.setdefault(subject, set()).add(planted_id)

    async def _send(
        self, topic: str, key: str, value: dict[str, Any], *, signed: bool = True
    ) -> None:
        raw = orjson.dumps(value)
        headers = signed_headers(raw) if signed else []
        await (await self.producer.send(topic, raw, key=key.encode(), headers=headers))

    async def forge(self, body: dict[str, Any]) -> str:
        """Writes an event as anyone with access to the log could: unsigned."""
        await self._send(PRIVATE.events, body["subject"], body, signed=False)
        self._note(body["subject"], body["event_id"])
        return str(body["event_id"])

    async def event(self, body: dict[str, Any]) -> str:
        await self._send(PRIVATE.events, body["subject"], body)
        self._note(body["subject"], body["event_id"])
        return str(body["event_id"])

    async def ask(self, body: dict[str, Any]) -> dict[str, Any]:
        await self._send(PRIVATE.requests, body["recipient"], body)
        self._note(body["recipient"], body["request_id"])
        return body

    async def decide(
        self,
        asked: dict[str, Any],
        decision: Decision,
        reason: Reason,
        consent: str | None,
        detail: str | None = None,
        *,
        decided_at: datetime | None = None,
        not_before: datetime | None = None,
    ) -> None:
        fence = await end_offsets(self.reader, PRIVATE.events)
        record = DispatchDecision(
            request_id=asked["request_id"],
            recipient=asked["recipient"],
            purpose=asked["purpose"],
            decision=decision,
            reason=reason,
            consent_event_id=consent,
            decided_at=decided_at or datetime.now(UTC),
            opt_out_event_id=asked.get("opt_out_event_id"),
            detail=detail,
            fence={str(p): o for p, o in sorted(fence.items())},
            not_before=not_before,
        )
        await self._send(PRIVATE.decisions, asked["recipient"], record.model_dump(mode="json"))
        self._note(asked["recipient"], asked["request_id"])


def confirmation(subject: str, opt_out_event_id: str) -> dict[str, Any]:
    return send_request(subject, OPT_OUT_CONFIRMATION, opt_out_event_id=opt_out_event_id)


SENT, DROPPED = Decision.DISPATCHED, Decision.DROPPED

# The planted numbers of these countries have windows of their own (the rest are
# Russian, never quiet): New York's is closed at the audit, and London's opened an
# hour before it, after a reminder deferred two hours before it.
NOW = datetime.now(UTC)
_NEW_YORK, _LONDON = ZoneInfo("America/New_York"), ZoneInfo("Europe/London")


def _local_window(zone: ZoneInfo, opens: datetime, hours: int) -> str:
    start = opens.astimezone(zone).replace(second=0, microsecond=0)
    return f"{start:%H:%M}-{start + timedelta(hours=hours):%H:%M}"


QUIET_HOURS = QuietHoursPolicy.from_settings(
    {
        "default": "00:00-00:00",
        "US": _local_window(_NEW_YORK, NOW + timedelta(hours=3), 1),
        "GB": _local_window(_LONDON, NOW - timedelta(hours=1), 10),
    }
)


def number_of(country_code: str, prefix: str, digits: int) -> str:
    """A valid number of that country, drawn at random."""
    while True:
        candidate = f"+{country_code}{prefix}{random.randrange(10**digits):0{digits}d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(candidate)):
            return candidate


async def plant_clean(p: Planter, subject: str) -> None:
    grant = await p.event(consent_granted(subject, "event_reminder"))
    await p.decide(await p.ask(send_request(subject)), SENT, Reason.CONSENTED, grant)
    stop = await p.event(opted_out(subject))
    await p.decide(
        await p.ask(confirmation(subject, stop)), SENT, Reason.OPT_OUT_CONFIRMATION, stop
    )
    await p.decide(await p.ask(send_request(subject)), DROPPED, Reason.OPTED_OUT, stop)
    await p.decide(
        await p.ask(send_request(subject, "marketing")), DROPPED, Reason.PURPOSE_NOT_PERMITTED, None
    )


@dataclass
class Planted:
    run: AuditRun
    subjects: dict[str, str]  # kind -> subject
    ids: dict[str, set[str]]
    out: Path

    def findings_of(self, kind: str) -> list[Finding]:
        """The findings about that kind's subject, by the ids planted for it."""
        mine = self.ids[self.subjects[kind]]
        return [
            f
            for f in self.run.report.findings
            if f.request_id in mine or any(e.event_id in mine for e in f.events)
        ]


@pytest.fixture(scope="module")
async def planted(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Planted]:
    topics = {
        PRIVATE.events: {"message.timestamp.type": "LogAppendTime"},
        PRIVATE.requests: {},
        PRIVATE.decisions: {},
    }
    async with private_topics(stack.kafka_bootstrap, topics):
        yield await _planted(stack, tmp_path_factory)


async def _planted(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Planted:
    kinds = [k.value for k in FindingKind] + ["clean"]
    subjects = {kind: unique_phone() for kind in kinds}
    subjects[FindingKind.DISPATCHED_IN_QUIET_HOURS] = number_of("1", "212", 7)
    subjects[FindingKind.DEFERRED_WITHOUT_FINAL_DECISION] = number_of("44", "7", 9)
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    reader = AIOKafkaConsumer(
        bootstrap_servers=stack.kafka_bootstrap, isolation_level="read_committed"
    )
    await producer.start()
    await reader.start()
    try:
        p = Planter(stack.kafka_bootstrap, producer, reader)
        await _plant(p, subjects)
    finally:
        await producer.stop()
        await reader.stop()
    out = tmp_path_factory.mktemp("audit-planted")
    run = await run_audit(
        AuditOptions(
            bootstrap=stack.kafka_bootstrap,
            trust=TRUST,
            out=out,
            subjects=frozenset(subjects.values()),
            confirmation_deadline=DEADLINE,
            settle=timedelta(0),
            progress=False,
            topics=PRIVATE,
            quiet_hours=QUIET_HOURS,
        )
    )
    return Planted(run, subjects, p.ids, out)


async def _plant(p: Planter, s: dict[str, str]) -> None:
    # The opt-outs whose confirmation is missing or late go first: they need to
    # be older than the deadline when the audit runs.
    unconfirmed = s["opt_out_without_confirmation"]
    await p.event(consent_granted(unconfirmed))
    await p.event(opted_out(unconfirmed))
    late = s["confirmation_late"]
    await p.event(consent_granted(late))
    late_stop = await p.event(opted_out(late))
    await asyncio.sleep(DEADLINE.total_seconds() + 0.5)
    await p.decide(
        await p.ask(confirmation(late, late_stop)), SENT, Reason.OPT_OUT_CONFIRMATION, late_stop
    )

    await plant_clean(p, s["clean"])

    cold = s["dispatched_without_consent"]
    await p.decide(await p.ask(send_request(cold)), SENT, Reason.CONSENTED, "no-such-grant")

    after = s["dispatched_after_opt_out"]
    grant = await p.event(consent_granted(after))
    stop = await p.event(opted_out(after))
    await p.decide(await p.ask(confirmation(after, stop)), SENT, Reason.OPT_OUT_CONFIRMATION, stop)
    await p.decide(await p.ask(send_request(after)), SENT, Reason.CONSENTED, grant)

    wrong = s["decision_mismatch"]
    await p.event(consent_granted(wrong))
    await p.decide(await p.ask(send_request(wrong)), DROPPED, Reason.NO_CONSENT, None)

    twice = s["request_with_several_decisions"]
    grant = await p.event(consent_granted(twice))
    asked = await p.ask(send_request(twice))
    await p.decide(asked, SENT, Reason.CONSENTED, grant)
    await p.decide(asked, SENT, Reason.CONSENTED, grant)

    undecided = s["request_without_decision"]
    await p.event(consent_granted(undecided))
    await p.ask(send_request(undecided))

    unasked = s["decision_without_request"]
    grant = await p.event(consent_granted(unasked))
    await p.decide(send_request(unasked), SENT, Reason.CONSENTED, grant)  # never on the topic

    night = s["dispatched_in_quiet_hours"]
    grant = await p.event(consent_granted(night))
    await p.decide(await p.ask(send_request(night)), SENT, Reason.CONSENTED, grant)

    waiting = s["deferred_without_final_decision"]
    earlier = NOW - timedelta(hours=3)
    grant = await p.event(consent_granted(waiting, occurred_at=earlier.isoformat()))
    asked = await p.ask(send_request(waiting))
    deferred_at = NOW - timedelta(hours=2)
    allowed = Verdict(decision=SENT, reason=Reason.CONSENTED, consent_event_id=grant)
    timed = decide_in_time(allowed, SendRequest.model_validate(asked), QUIET_HOURS, deferred_at)
    assert timed.decision is Decision.DEFERRED
    await p.decide(
        asked,
        Decision.DEFERRED,
        Reason.QUIET_HOURS,
        grant,
        timed.detail,
        decided_at=deferred_at,
        not_before=timed.not_before,
    )

    forger = s["forged_event"]
    await p.event(consent_granted(forger))
    stop = await p.event(opted_out(forger))
    await p.decide(await p.ask(confirmation(forger, stop)), SENT, Reason.OPT_OUT_CONFIRMATION, stop)
    await p.forge({**opted_out(forger), "type": "OptedIn"})
    # The dispatcher saw the projection, which refused the forgery: still opted out.
    await p.decide(await p.ask(send_request(forger)), DROPPED, Reason.OPTED_OUT, stop)

    poison = s["request_unprocessable"]
    await p.event(consent_granted(poison))
    isolated = "unprocessable: RecursionError: maximum recursion depth exceeded"
    await p.decide(
        await p.ask(send_request(poison)), DROPPED, Reason.INVALID_REQUEST, None, isolated
    )


def test_a_clean_recorded_history_gives_no_finding(planted: Planted) -> None:
    assert planted.findings_of("clean") == []


def test_the_audit_command_exits_0_on_a_clean_recorded_history(
    planted: Planted, stack: Stack, tmp_path: Path
) -> None:
    done = _cli(stack, tmp_path, "--subject", planted.subjects["clean"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 violations, 0 warnings" in done.stdout
    assert "recomputed 4/4 equal" in done.stdout
    assert (tmp_path / "audit.html").is_file() and (tmp_path / "audit.json").is_file()


def test_the_audit_command_exits_1_on_a_violation(
    planted: Planted, stack: Stack, tmp_path: Path
) -> None:
    subject = planted.subjects["dispatched_without_consent"]
    done = _cli(stack, tmp_path, "--subject", subject, "--subject", planted.subjects["clean"])
    assert done.returncode == 1, done.stdout + done.stderr
    assert "dispatched_without_consent 1" in done.stdout


def test_the_audit_command_exits_2_when_the_broker_cannot_be_reached(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.audit",
            "--bootstrap",
            "127.0.0.1:1",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        env={**os.environ, **SIGNING_ENV},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "cannot read the log" in done.stderr


def _cli(stack: Stack, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "services.audit",
            "--bootstrap",
            stack.kafka_bootstrap,
            "--out",
            str(out),
            "--no-progress",
            *args,
        ],
        cwd=ROOT,
        # The planted decisions were taken with no quiet hours: judged by the same.
        env={
            **os.environ,
            **SIGNING_ENV,
            "KAFKA_TOPIC_PREFIX": PREFIX,
            "DISPATCHER_QUIET_HOURS": '{"default": "00:00-00:00"}',
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def _only(planted: Planted, kind: FindingKind) -> Finding:
    found = planted.findings_of(kind.value)
    assert [f.kind for f in found] == [kind], found
    [only] = found
    assert only.recipient == mask_phone(planted.subjects[kind.value])
    return only


def test_a_dispatch_without_any_consent_is_found_and_named(planted: Planted) -> None:
    found = _only(planted, FindingKind.DISPATCHED_WITHOUT_CONSENT)
    assert found.severity is Severity.VIOLATION
    assert found.purpose == "event_reminder"
    assert (found.recorded, found.recomputed) == ("dispatched/consented", "dropped/no_consent")


def test_a_reminder_dispatched_after_an_opt_out_is_found_and_named(planted: Planted) -> None:
    found = _only(planted, FindingKind.DISPATCHED_AFTER_OPT_OUT)
    assert found.severity is Severity.VIOLATION
    assert [e.type for e in found.events] == ["OptedOut"]
    assert "covered by its fence" in found.detail


def test_a_recorded_decision_other_than_the_rules_give_is_found_and_named(
    planted: Planted,
) -> None:
    found = _only(planted, FindingKind.DECISION_MISMATCH)
    assert found.severity is Severity.VIOLATION
    assert (found.recorded, found.recomputed) == ("dropped/no_consent", "dispatched/consented")
    assert [e.type for e in found.events] == ["ConsentGranted"]


def test_a_request_decided_twice_is_found_and_named(planted: Planted) -> None:
    found = _only(planted, FindingKind.REQUEST_WITH_SEVERAL_DECISIONS)
    assert found.severity is Severity.VIOLATION  # both dispatched: sent twice
    assert len(found.decisions) == 2


def test_a_request_without_a_decision_is_found_and_named(planted: Planted) -> None:
    found = _only(planted, FindingKind.REQUEST_WITHOUT_DECISION)
    assert found.severity is Severity.WARNING
    assert found.purpose == "event_reminder"


def test_a_reminder_dispatched_in_the_recipients_quiet_hours_is_found_and_named(
    planted: Planted,
) -> None:
    found = _only(planted, FindingKind.DISPATCHED_IN_QUIET_HOURS)
    assert found.severity is Severity.VIOLATION
    assert found.recorded == "dispatched/consented"
    assert found.recomputed == "deferred/quiet_hours"


def test_a_deferral_never_followed_by_a_final_decision_is_found_and_named(
    planted: Planted,
) -> None:
    found = _only(planted, FindingKind.DEFERRED_WITHOUT_FINAL_DECISION)
    assert found.severity is Severity.WARNING
    assert "deferred by quiet hours" in found.detail


def test_an_opt_out_without_confirmation_is_found_and_named(planted: Planted) -> None:
    found = _only(planted, FindingKind.OPT_OUT_WITHOUT_CONFIRMATION)
    assert found.request_id is None
    assert [e.type for e in found.events] == ["OptedOut"]


def test_a_late_confirmation_is_found_and_named(planted: Planted) -> None:
    found = _only(planted, FindingKind.CONFIRMATION_LATE)
    assert found.purpose == OPT_OUT_CONFIRMATION
    assert found.request_id is not None


def test_a_decision_without_its_request_is_found_and_named(planted: Planted) -> None:
    found = _only(planted, FindingKind.DECISION_WITHOUT_REQUEST)
    assert found.severity is Severity.WARNING


def test_an_opt_in_forged_without_inbounds_signature_is_a_violation_and_not_replayed(
    planted: Planted,
) -> None:
    found = _only(planted, FindingKind.FORGED_EVENT)
    assert found.severity is Severity.VIOLATION
    assert [e.type for e in found.events] == ["OptedIn"]
    assert "no signature.ed25519 header" in found.detail
    # Replayed as the projection applied it: the drop after the forgery agrees.
    assert [f.kind for f in planted.findings_of("forged_event")] == [FindingKind.FORGED_EVENT]


def test_the_planted_audit_fails_and_its_report_names_every_kind(planted: Planted) -> None:
    report = planted.run.report
    assert report.exit_code == 1
    assert set(report.findings_by_kind) == {k.value for k in FindingKind}
    html = (planted.out / "audit.html").read_text(encoding="utf-8")
    for kind in FindingKind:
        assert kind.value in html


# ------------------------------------------------------- against the real dispatcher

PURPOSES = [
    "event_reminder",
    "registration_confirmation",
    "educational_material",
    "inquiry_response",
    "customer_support",
]


def _random_history(
    rng: random.Random, subjects: list[str], requests: int
) -> list[tuple[str, dict[str, Any]]]:
    """(topic, record) in production order: grants, revocations, opt-outs, opt-ins
    interleaved with requests, some for purposes never permitted, some repeated."""
    now = datetime.now(UTC)
    ops: list[tuple[str, dict[str, Any]]] = []
    stops: dict[str, list[str]] = {}
    for s in subjects:  # most subjects start with a grant, some never have one
        if rng.random() < 0.85:
            ops.append(
                (
                    CONSENT_EVENTS,
                    consent_granted(
                        s,
                        *rng.sample(PURPOSES, rng.randint(1, 3)),
                        occurred_at=(now - timedelta(days=1)).isoformat(),
                    ),
                )
            )
    asked = 0
    while asked < requests:
        s, roll = rng.choice(subjects), rng.random()
        if roll < 0.04:
            expires = now + timedelta(seconds=rng.uniform(-60, 30)) if rng.random() < 0.3 else None
            ops.append(
                (
                    CONSENT_EVENTS,
                    consent_granted(
                        s,
                        *rng.sample(PURPOSES, rng.randint(1, 2)),
                        expires_at=expires.isoformat() if expires else None,
                    ),
                )
            )
        elif roll < 0.06:
            stop = opted_out(s)
            stops.setdefault(s, []).append(stop["event_id"])
            ops.append((CONSENT_EVENTS, stop))
            ops.append((MESSAGES_REQUESTS, confirmation(s, stop["event_id"])))
        elif roll < 0.075:
            ops.append((CONSENT_EVENTS, {**opted_out(s), "type": "OptedIn"}))
        elif roll < 0.085:
            body = {**opted_out(s), "type": "ConsentRevoked", "source": "crm"}
            body["purposes"] = rng.sample(PURPOSES, 1)
            ops.append((CONSENT_EVENTS, body))
        elif roll < 0.095 and stops.get(s):
            ops.append((MESSAGES_REQUESTS, confirmation(s, rng.choice(stops[s]))))  # a repeat
            asked += 1
        elif roll < 0.1:
            # One person known by two identifiers now, or a number handed on: the
            # dispatcher and the audit must both fold people, not identifiers.
            other = rng.choice([o for o in subjects if o != s])
            kind, field = rng.choice(
                [("IdentityLinked", "linked"), ("IdentifierChanged", "previous")]
            )
            body = {**opted_out(s), "type": kind, "source": "whatsapp_webhook", field: other}
            ops.append((CONSENT_EVENTS, body))
        elif roll < 0.105:
            # What the platform reports: its stops, resumes, holds and failures.
            kind, source = rng.choice(
                [
                    ("MarketingStopped", "whatsapp_user_preferences"),
                    ("MarketingResumed", "whatsapp_user_preferences"),
                    ("DeliveryLimited", "whatsapp_status"),
                    ("DeliveryFailed", "whatsapp_status"),
                    ("DeliveryFailed", "whatsapp_status"),
                    ("UserMessaged", "whatsapp_reply"),
                ]
            )
            body = {**opted_out(s), "type": kind, "source": source}
            if kind == "MarketingStopped":
                body["purposes"] = rng.sample(PURPOSES, 1)
            ops.append((CONSENT_EVENTS, body))
            if kind == "DeliveryFailed":  # three in a row make the number unreachable
                ops += [(CONSENT_EVENTS, {**body, "event_id": str(uuid.uuid4())}) for _ in "ab"]
        else:
            purpose = rng.choice([*PURPOSES, "marketing"])
            request = send_request(s, purpose)
            ops.append((MESSAGES_REQUESTS, request))
            if rng.random() < 0.01:
                ops.append((MESSAGES_REQUESTS, request))  # a redelivered request_id
            asked += 1
    return ops


@pytest.mark.e2e
async def test_the_audit_recomputes_every_decision_of_the_real_dispatcher(
    stack: Stack, services: dict[str, ServiceProcess], tmp_path: Path
) -> None:
    """10,000 requests for 300 fresh subjects, interleaved with consent events so that
    fences fall everywhere, frequency caps are reached and grants expire meanwhile."""
    rng = random.Random(20261127)
    subjects = [unique_phone() for _ in range(300)]
    ops = _random_history(rng, subjects, 10_000)
    wanted = {r["request_id"] for topic, r in ops if topic == MESSAGES_REQUESTS}
    decisions = await TopicReader(stack.kafka_bootstrap, MESSAGES_DECISIONS).start()
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        for start in range(0, len(ops), 250):  # in waves, so decisions and events interleave
            chunk = ops[start : start + 250]
            sent = [
                await producer.send(
                    t,
                    raw := orjson.dumps(v),
                    key=(v.get("subject") or v["recipient"]).encode(),
                    headers=signed_headers(raw),
                )
                for t, v in chunk
            ]
            await asyncio.gather(*sent)
        seen: set[str] = set()
        read = 0

        def all_decided(records: list[Any]) -> bool:
            nonlocal read
            seen.update(orjson.loads(r.value)["request_id"] for r in records[read:])
            read = len(records)
            return wanted <= seen

        await decisions.wait_for(all_decided, timeout=240)
    finally:
        await producer.stop()
        await decisions.stop()
    run = await run_audit(
        AuditOptions(
            bootstrap=stack.kafka_bootstrap,
            trust=TRUST,
            out=tmp_path,
            subjects=frozenset(subjects),
            progress=False,
        )
    )
    mine = [r for r in run.report.findings if r.kind is FindingKind.DECISION_MISMATCH]
    recomputed = run.replayed.history.decisions
    assert len(recomputed) >= 10_000
    assert run.report.recomputed.decisions == len(recomputed)
    assert mine == [], [f.detail for f in mine[:5]]
    assert run.report.recomputed.agreeing == run.report.recomputed.decisions
    consent_kinds = {
        FindingKind.DISPATCHED_WITHOUT_CONSENT,
        FindingKind.DISPATCHED_AFTER_OPT_OUT,
        FindingKind.REQUEST_WITH_SEVERAL_DECISIONS,
        FindingKind.REQUEST_WITHOUT_DECISION,
    }
    assert [f for f in run.report.findings if f.kind in consent_kinds] == []
    reasons = run.report.decisions_by_reason
    assert {"platform_limit", "unreachable"} <= set(reasons), str(sorted(reasons.items()))
    assert {
        "consented",
        "frequency_capped",
        "opted_out",
        "no_consent",
        "purpose_not_permitted",
        "opt_out_confirmation",
    } <= set(reasons)
    print("\n" + "\n".join(line for line in str(run.report.findings_by_kind).splitlines()))
    print(
        f"decisions by reason: {reasons}; agreeing beyond the fence: "
        f"{run.report.recomputed.beyond_fence}"
    )
