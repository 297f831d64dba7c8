"""What the dispatcher benchmark decides on: its private topics, the requests and
their recipients' consent, and the dispatcher's schema reset before every run."""

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from random import Random

import asyncpg
import orjson

from bench.consent_seed import phones, seed_subjects
from bench.figures import Report
from bench.kafka_io import Record, produce_bulk
from bench.private import TopicSpec, prefixed, topic_ends, topic_prefix
from shared.topics import CONSENT_EVENTS, MESSAGES_DECISIONS, MESSAGES_OUTBOUND, MESSAGES_REQUESTS
from shared.topics import dlq as dlq_of

PURPOSES = ("event_reminder",) * 8 + ("registration_confirmation", "educational_material")


@dataclass(frozen=True)
class Topics:
    """The run's topics: the contract's that the dispatcher uses, named as it names them
    when started with KAFKA_TOPIC_PREFIX=prefix; and scratch, the passthroughs' output."""

    prefix: str
    requests: str
    decisions: str
    outbound: str
    consent: str
    scratch: str

    @classmethod
    def for_run(cls, rid: str) -> "Topics":
        prefix = topic_prefix(rid)
        return cls(
            prefix,
            requests=prefixed(prefix, MESSAGES_REQUESTS),
            decisions=prefixed(prefix, MESSAGES_DECISIONS),
            outbound=prefixed(prefix, MESSAGES_OUTBOUND),
            consent=prefixed(prefix, CONSENT_EVENTS),
            scratch=f"{prefix}scratch",
        )

    def specs(self) -> list[TopicSpec]:
        names = [self.requests, self.decisions, self.outbound, self.consent, self.scratch]
        return [TopicSpec(n) for n in [*names, dlq_of(self.requests), dlq_of(self.consent)]]


def request_records(recipients: list[str], count: int, prefix: str, seed: int = 7) -> list[Record]:
    rng = Random(seed)
    requested_at = datetime.now(UTC).isoformat()
    records: list[Record] = []
    for i in range(count):
        recipient = recipients[rng.randrange(len(recipients))]
        body = {
            "request_id": f"{prefix}-{i}",
            "recipient": recipient,
            "purpose": PURPOSES[rng.randrange(len(PURPOSES))],
            "message": {"type": "text", "text": {"body": "Reminder: the workshop starts at 10:00"}},
            "requested_at": requested_at,
        }
        records.append((recipient.encode(), orjson.dumps(body)))
    return records


async def seed_recipients(
    report: Report, database_url: str, count: int, log_dir: Path
) -> list[str]:
    """`count` recipients, with mixed consent in the database's projection."""
    recipients = phones(count)
    started = time.perf_counter()
    kinds = await seed_subjects(database_url, recipients)
    report.note(
        f"setup: consent projection of {count:,} recipients "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(kinds.items()))}) "
        f"in {time.perf_counter() - started:.1f} s; logs in {log_dir}"
    )
    return recipients


async def produce_backlog(
    report: Report, bootstrap: str, topic: str, recipients: list[str], n: int, rid: str
) -> dict[int, int]:
    """`n` requests produced once on `topic`; returns its end offsets before them,
    where every side's group starts."""
    starts = await topic_ends(bootstrap, topic)
    records = request_records(recipients, n, f"req-{rid}")
    seconds = await produce_bulk(bootstrap, topic, records)
    report.note(f"setup: {n:,} requests produced in {seconds:.1f} s ({n / seconds:,.0f}/s)")
    return starts


HISTORY = 200_000  # earlier decisions each run starts with

_HISTORY = """
INSERT INTO dispatcher.decisions (request_id, recipient, purpose, decision, reason,
    decided_at, source_partition, source_offset, decision_json)
SELECT 'history-' || g, '+7916' || lpad(((g * 7919) % 10000000)::text, 7, '0'),
    'event_reminder', 'dispatched', 'consented', now() - interval '3 days', 0, g, '{}'::jsonb
FROM generate_series(1, $1::int) AS g
"""


async def forget_decisions(database_url: str) -> None:
    """The dispatcher's schema as a running system's: the run's own decisions gone, and
    HISTORY decisions of three days ago (outside the frequency window), analysed.
    An empty, just truncated table would measure something else: the prepared
    idempotency lookup (`request_id = ANY($1)`) settles on a generic plan while the
    table is tiny, a sequential scan it keeps as the table grows, until autovacuum
    analyses it (measured here: 84 ms per batch instead of 2)."""
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch(
            "SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables"
            " WHERE schemaname = 'dispatcher'"
        )
        await conn.execute(f"TRUNCATE {', '.join(r['t'] for r in tables)}")
        await conn.execute(_HISTORY, HISTORY)
        await conn.execute("ANALYZE dispatcher.decisions")
    finally:
        await conn.close()
