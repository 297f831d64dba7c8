"""Audit replay rate (decisions/s) over a generated history of N decisions.

    python -m bench.bench_audit [--decisions N] [--e2e-decisions M] [--no-e2e]
                                [--quick] [--summary FILE.json]

1. Pure: the recomputation (`services.audit.recompute.audit`) over an in-memory
   history: N decisions for N/100 subjects over 30 days, each decided as the
   dispatcher decides (fence = the consent log's end offsets at that moment,
   facts from the earlier decisions), with grants, opt-outs, opt-ins,
   revocations, purposes never permitted and frequency caps along the way.
2. End to end (unless --no-e2e): the same kind of history, M decisions, produced
   to three fresh topics of the broker (KAFKA_BOOTSTRAP_SERVERS) with its own
   timestamps, then replayed by the audit (read_committed, group-less) and
   recomputed; the topics are deleted afterwards.

Prints the figures; every decision must recompute equal (else exit 1)."""

import argparse
import asyncio
import gc
import os
import random
import resource
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bench.figures import Report, base_parser, sized
from services.audit.history import AuditPolicy, History, LoggedDecision, LoggedRequest
from services.audit.recompute import audit
from services.audit.replay import Topics
from shared.consent.fold import fold_subject
from shared.consent.state import LoggedEvent, SubjectState
from shared.contract.decisions import DispatchDecision
from shared.contract.events import ConsentEvent, EventType
from shared.contract.purposes import Purpose
from shared.contract.requests import SendRequest
from shared.dispatch.facts import DispatchFacts
from shared.dispatch.rules import FrequencyPolicy, decide_send
from tests.support.signing import TRUST, signed_headers

PURPOSES = [p.value for p in Purpose]
SPAN = timedelta(days=30)
START = (datetime.now(UTC) - SPAN - timedelta(days=1)).replace(microsecond=0)
PARTITIONS = 3
MESSAGE = {"type": "text", "text": {"body": "Reminder: the workshop starts at 10:00"}}


@dataclass
class Generated:
    history: History
    frequency: FrequencyPolicy
    seconds: float


def _phone(i: int) -> str:
    return f"+7916{i:07d}"


def _event(kind: EventType, subject: str, when: datetime, rng: random.Random) -> ConsentEvent:
    granted = kind is EventType.CONSENT_GRANTED
    revoked = kind is EventType.CONSENT_REVOKED
    return ConsentEvent.model_construct(
        event_id=str(uuid.UUID(int=rng.getrandbits(128))),
        type=kind,
        subject=subject,
        occurred_at=when,
        source="event_registration" if granted else ("crm" if revoked else "whatsapp_reply"),
        purposes=tuple(Purpose(p) for p in rng.sample(PURPOSES, rng.randint(1, 3)))
        if granted or revoked
        else None,
        evidence={"registration_id": "R-1"} if granted else None,
        expires_at=when + timedelta(days=rng.randint(3, 40))
        if granted and rng.random() < 0.2
        else None,
    )


def _timeline(decisions: int, rng: random.Random) -> Iterator[tuple[datetime, str, int]]:
    """(moment, what, subject index) in time order: 'e' an event, 'r' a request."""
    subjects = max(1, decisions // 100)
    items: list[tuple[datetime, str, int]] = []
    for s in range(subjects):
        items.append((START + SPAN * rng.random() * 0.05, "e", s))  # an early grant for most
        for _ in range(rng.randint(0, 4)):
            items.append((START + SPAN * rng.random(), "e", s))
    for _ in range(decisions):
        # a few busy recipients reach the frequency cap
        s = rng.randrange(subjects // 20 or 1) if rng.random() < 0.2 else rng.randrange(subjects)
        items.append((START + SPAN * rng.random(), "r", s))
    items.sort()
    return iter(items)


def generate(decisions: int, seed: int = 6_3) -> Generated:
    """A history decided exactly as the dispatcher decides it."""
    started = time.perf_counter()
    rng = random.Random(seed)
    frequency = FrequencyPolicy()
    history = History()
    logs: dict[int, list[LoggedEvent]] = {}
    states: dict[int, SubjectState] = {}
    facts = DispatchFacts(frequency.window)
    ends = [0] * PARTITIONS
    fence: dict[str, int] = {str(p): 0 for p in range(PARTITIONS)}
    offsets = {"r": 0, "d": 0}
    for when, what, s in _timeline(decisions, rng):
        subject = _phone(s)
        if what == "e":
            mine = logs.setdefault(s, [])
            kind = EventType.CONSENT_GRANTED
            if mine:
                kind = rng.choice(
                    [
                        EventType.OPTED_OUT,
                        EventType.OPTED_IN,
                        EventType.CONSENT_REVOKED,
                        EventType.CONSENT_GRANTED,
                    ]
                )
            partition = s % PARTITIONS
            logged = LoggedEvent(
                event=_event(kind, subject, when, rng),
                log_time=when,
                partition=partition,
                offset=ends[partition],
            )
            ends[partition] += 1
            fence = {str(p): o for p, o in enumerate(ends)}
            mine.append(logged)
            history.events.append(logged)
            states[s] = fold_subject(subject, mine)
            continue
        purpose = rng.choice([*PURPOSES, "marketing"]) if rng.random() < 0.97 else "promotion"
        request = SendRequest.model_construct(
            request_id=str(uuid.UUID(int=rng.getrandbits(128))),
            recipient=subject,
            purpose=purpose,
            message=MESSAGE,
            requested_at=when,
            opt_out_event_id=None,
        )
        history.requests.append(
            LoggedRequest(
                request.request_id, subject, purpose, request, None, when, 0, offsets["r"]
            )
        )
        offsets["r"] += 1
        decided_at = when  # the fence is everything appended before: nothing races it
        verdict = decide_send(
            states.get(s),
            request,
            facts.for_request(request, decided_at),
            decided_at,
            frequency,
        )
        decision = DispatchDecision.model_construct(
            request_id=request.request_id,
            recipient=subject,
            purpose=purpose,
            decision=verdict.decision,
            reason=verdict.reason,
            consent_event_id=verdict.consent_event_id,
            decided_at=decided_at,
            opt_out_event_id=None,
            detail=verdict.detail,
            fence=fence,
        )
        facts.record(decision)
        history.decisions.append(LoggedDecision(decision, decided_at, 0, offsets["d"]))
        offsets["d"] += 1
    return Generated(history, frequency, time.perf_counter() - started)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _policy(generated: Generated) -> AuditPolicy:
    return AuditPolicy(frequency=generated.frequency, as_of=datetime.now(UTC))


def bench_pure(report: Report, decisions: int) -> bool:
    generated = generate(decisions)
    h = generated.history
    report.note(
        f"generated {len(h.decisions):,} decisions and {len(h.events):,} consent events "
        f"for {decisions // 100:,} subjects in {generated.seconds:.1f}s"
    )
    started = time.perf_counter()
    result = audit(h, _policy(generated))
    elapsed = time.perf_counter() - started
    agreeing = sum(1 for r in result.recomputations if r.agrees)
    report.figure("audit recompute, pure (in memory)", len(h.decisions) / elapsed, "decisions/s")
    report.note(
        f"pure: {len(h.decisions):,} decisions in {elapsed:.1f}s, {agreeing:,} recomputed "
        f"equal, {len(result.violations)} violations; peak RSS {_rss_mb():,.0f} MB"
    )
    return agreeing == len(h.decisions) and not result.violations


async def _produce(bootstrap: str, topics: Topics, generated: Generated) -> float:
    import orjson
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from shared.kafka.security import security_options

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security_options())
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(t, PARTITIONS, 1, topic_configs={"retention.ms": "-1"})
                for t in (topics.events, topics.requests, topics.decisions)
            ]
        )
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=1024 * 1024,
        **security_options(),
    )
    await producer.start()
    started = time.perf_counter()
    h = generated.history
    pending = []

    def ms(moment: datetime) -> int:
        return int(moment.timestamp() * 1000)

    try:
        # Events first, in offset order per partition: the fences name those offsets.
        for e in sorted(h.events, key=lambda e: (e.partition, e.offset)):
            pending.append(
                await producer.send(
                    topics.events,
                    value := e.event.model_dump_json().encode(),
                    key=e.event.subject.encode(),
                    headers=signed_headers(value),
                    partition=e.partition,
                    timestamp_ms=ms(e.log_time),
                )
            )
        for r in h.requests:
            assert r.request is not None
            pending.append(
                await producer.send(
                    topics.requests,
                    r.request.model_dump_json().encode(),
                    key=(r.recipient or "").encode(),
                    timestamp_ms=ms(r.log_time),
                )
            )
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        for d in h.decisions:
            pending.append(
                await producer.send(
                    topics.decisions,
                    orjson.dumps(d.decision.model_dump(mode="json")),
                    key=(d.decision.recipient or "").encode(),
                    timestamp_ms=ms(d.log_time),
                )
            )
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def _delete(bootstrap: str, topics: Topics) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    from shared.kafka.security import security_options

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security_options())
    await admin.start()
    try:
        await admin.delete_topics([topics.events, topics.requests, topics.decisions])
    finally:
        await admin.close()


async def bench_e2e(report: Report, bootstrap: str, decisions: int) -> bool:
    from services.audit.replay import ReplayScope, replay

    run = uuid.uuid4().hex[:8]
    topics = Topics(
        events=f"bench.audit.{run}.consent.events",
        requests=f"bench.audit.{run}.requests",
        decisions=f"bench.audit.{run}.decisions",
    )
    generated = generate(decisions, seed=61)
    h = generated.history
    records = len(h.events) + len(h.requests) + len(h.decisions)
    try:  # the topics are the run's own: removed at its end, also on failure
        produced = await _produce(bootstrap, topics, generated)
        report.note(f"produced {records:,} records to three fresh topics in {produced:.1f}s")
        replayed = await replay(bootstrap, ReplayScope(), topics, trust=TRUST, progress=False)
        started = time.perf_counter()
        result = audit(replayed.history, _policy(generated))
        recompute = time.perf_counter() - started
    finally:
        await _delete(bootstrap, topics)
    n = len(replayed.history.decisions)
    read = sum(replayed.read.values())
    agreeing = sum(1 for r in result.recomputations if r.agrees)
    report.figure(
        "audit replay end to end (read + recompute)",
        n / (replayed.seconds + recompute),
        "decisions/s",
    )
    report.figure("audit replay read from Kafka", read / replayed.seconds, "records/s")
    report.note(
        f"end to end: {n:,} decisions ({read:,} records) read in {replayed.seconds:.1f}s, "
        f"recomputed in {recompute:.1f}s, {agreeing:,} equal; peak RSS {_rss_mb():,.0f} MB"
    )
    return n == decisions and agreeing == n and not result.violations


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__ or "")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--decisions", type=int, default=None, help="default 1,000,000")
    p.add_argument(
        "--e2e-decisions", type=int, default=None, help="the end-to-end run (default: --decisions)"
    )
    p.add_argument("--no-e2e", action="store_true", help="only the pure recomputation")
    p.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    )
    args = p.parse_args(argv)
    gc.disable()  # as the audit command does
    decisions = sized(args.decisions, 1_000_000, args.quick)
    e2e = args.e2e_decisions or decisions
    report = Report(
        "audit replay",
        f"{decisions:,} decisions" + ("" if args.no_e2e else f" (end to end: {e2e:,})"),
    )
    report.header()
    ok = bench_pure(report, decisions)
    if not args.no_e2e:
        ok = asyncio.run(bench_e2e(report, args.bootstrap, e2e)) and ok
    report.write(args.summary)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
