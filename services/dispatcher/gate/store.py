"""Reads the consent projection, and reads and writes the dispatcher's own schema."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from services.dispatcher.request_locks import DECISIONS, lock_request_ids
from shared.consent.state import SubjectState
from shared.dispatch.facts import COUNTS_TOWARD_CAP_SQL, SPENDS_CONFIRMATION_SQL


@dataclass(frozen=True, slots=True)
class DecisionRow:
    """Holds a decision as stored and published: `decision_json` and `outbound_json` are the
    record values, as bytes (thousands a second; no model per row)."""

    request_id: str
    recipient: str | None
    purpose: str | None
    decision: str
    reason: str
    consent_event_id: str | None
    opt_out_event_id: str | None
    decided_at: datetime
    source_partition: int
    source_offset: int
    decision_json: bytes
    outbound_json: bytes | None
    # The record's topic: messages.requests.v1, or messages.deferred.v1 for a release.
    source_topic: str | None = None
    # A deferred decision: when it is due, and the request to decide again then.
    not_before: datetime | None = None
    request_json: bytes | None = None
    # Set on a decision that replaces a deferred one: that row's decided_at, so
    # that of two instances deciding one release, only the first replaces it.
    replaces: datetime | None = None


# The rows as unnest() columns, in `_columns` order ($1..$16).
_ROWS = """unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::text[], $8::timestamptz[], $9::int[], $10::bigint[], $11::text[], $12::text[],
        $13::text[], $14::timestamptz[]"""
_AS = "AS u(r, rc, pu, d, re, c, o, t, sp, so, dj, oj, st, nb"


def _spend_confirmations(written: str) -> str:
    """Records the one confirmation per opt-out of the decisions `written` returns."""
    return f"""INSERT INTO dispatcher.confirmations (opt_out_event_id, request_id, dispatched_at)
    SELECT opt_out_event_id, request_id, decided_at FROM {written}
    WHERE {SPENDS_CONFIRMATION_SQL}
    ON CONFLICT DO NOTHING"""


# The dispatcher's pool reads by key only, and every table it reads has the key's
# index: no sequential scans. The tables are partitioned by day, and a plan made
# while today's partition was nearly empty scans it, comparing each row with every
# request_id of the batch, until autovacuum next analyses it. Measured on batches of
# 2,000 (lookup and record) while today's partition grew from 0 to 60,000 rows: from
# 41 ms to 2.8 s a batch, against 40 to 70 ms throughout with this setting. Planning
# each call for its values instead (plan_cache_mode) chose scans too, for the middle
# sizes, and costs 6 to 8 ms a batch.
POOL_SETTINGS: Final = {"enable_seqscan": "off"}

# One statement: the decisions and, for those it inserted that confirm an
# opt-out, the confirmation, atomically and in one round trip. A request_id that has
# a row, in any day's partition, is not inserted: the primary key (request_id,
# decided_at) cannot refuse it, the request_id's lock (request_locks.py) makes the check
# sound. The rows found are read as the lookup reads them, one `= ANY` scan per
# partition rather than a probe per row.
_INSERT_DECISIONS = f"""
WITH inserted AS (
    INSERT INTO dispatcher.decisions (request_id, recipient, purpose, decision, reason,
        consent_event_id, opt_out_event_id, decided_at, source_partition, source_offset,
        decision_json, outbound_json, source_topic, not_before)
    SELECT r, rc, pu, d, re, c, o, t, sp, so, dj::jsonb, oj::jsonb, st, nb
    FROM {_ROWS}) {_AS})
    WHERE u.r NOT IN (
        SELECT request_id FROM dispatcher.decisions WHERE request_id = ANY($1::text[])
    )
    RETURNING request_id, recipient, decision, reason, opt_out_event_id, decided_at, not_before
), confirmed AS (
    {_spend_confirmations("inserted")}
), waiting AS (
    INSERT INTO dispatcher.deferred (request_id, recipient, not_before, request_json, deferred_at)
    SELECT i.request_id, i.recipient, i.not_before, w.rj::jsonb, i.decided_at
    FROM inserted i JOIN unnest($1::text[], $15::text[]) AS w(r, rj) ON w.r = i.request_id
    WHERE i.decision = 'deferred'
    ON CONFLICT DO NOTHING
)
SELECT request_id FROM inserted
"""

# A release decided: the deferred row is replaced only if it is still the one
# this instance read (compare and set on decided_at); a final decision ends the
# wait, a new deferral moves it.
_REPLACE_DEFERRED = f"""
WITH replaced AS (
    UPDATE dispatcher.decisions d SET decision = u.d, reason = u.re,
        consent_event_id = u.c, opt_out_event_id = u.o, decided_at = u.t,
        source_partition = u.sp, source_offset = u.so, decision_json = u.dj::jsonb,
        outbound_json = u.oj::jsonb, source_topic = u.st, not_before = u.nb
    FROM {_ROWS}, $15::text[], $16::timestamptz[]) {_AS}, rj, was)
    WHERE d.request_id = u.r AND d.decision = 'deferred' AND d.decided_at = u.was
    RETURNING d.request_id, d.decision, d.reason, d.opt_out_event_id, d.decided_at, d.not_before
), confirmed AS (
    {_spend_confirmations("replaced")}
), ended AS (
    DELETE FROM dispatcher.deferred w USING replaced r
    WHERE w.request_id = r.request_id AND r.decision <> 'deferred'
), moved AS (
    UPDATE dispatcher.deferred w SET not_before = r.not_before, released_at = NULL
    FROM replaced r WHERE w.request_id = r.request_id AND r.decision = 'deferred'
)
SELECT request_id FROM replaced
"""

_STORED_DECISIONS = """
SELECT request_id, recipient, purpose, decision, reason, consent_event_id, opt_out_event_id,
       decided_at, source_partition, source_offset, decision_json::text, outbound_json::text,
       source_topic, not_before
FROM dispatcher.decisions WHERE request_id = ANY($1::text[])
"""

# One statement sees one snapshot: the states and the positions they reflect
# (the projector commits both in one transaction), in one round trip.
_STATES_WITH_POSITIONS = """
SELECT subject, state::text AS state, NULL::int AS partition, NULL::bigint AS next_offset
FROM consent.subjects WHERE subject = ANY($1::text[])
UNION ALL
SELECT NULL, NULL, partition, next_offset FROM consent.tracking WHERE topic = $2
"""


_DISPATCHED_SINCE = f"""
SELECT recipient, array_agg(decided_at ORDER BY decided_at) AS times FROM dispatcher.decisions
WHERE recipient = ANY($1::text[]) AND decided_at > $2 AND {COUNTS_TOWARD_CAP_SQL}
GROUP BY recipient
"""


class GateStore:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def applied_positions(self, topic: str) -> dict[int, int]:
        rows = await self.pool.fetch(
            "SELECT partition, next_offset FROM consent.tracking WHERE topic = $1", topic
        )
        return {row["partition"]: row["next_offset"] for row in rows}

    async def states_with_positions(
        self, subjects: Sequence[str], topic: str
    ) -> tuple[dict[str, SubjectState], dict[int, int]]:
        """Returns the subjects' states and the tracking positions they reflect, read
        in one snapshot."""
        states: dict[str, SubjectState] = {}
        positions: dict[int, int] = {}
        for row in await self.pool.fetch(_STATES_WITH_POSITIONS, list(subjects), topic):
            if row["subject"] is None:
                positions[row["partition"]] = row["next_offset"]
            else:
                states[row["subject"]] = SubjectState.model_validate_json(row["state"])
        return states, positions

    async def decisions(self, request_ids: Sequence[str]) -> dict[str, DecisionRow]:
        rows = await self.pool.fetch(_STORED_DECISIONS, list(request_ids))
        return {row["request_id"]: _stored(row) for row in rows}

    async def confirmed_opt_outs(self, opt_out_event_ids: Sequence[str]) -> set[str]:
        rows = await self.pool.fetch(
            "SELECT opt_out_event_id FROM dispatcher.confirmations"
            " WHERE opt_out_event_id = ANY($1::text[])",
            list(opt_out_event_ids),
        )
        return {row["opt_out_event_id"] for row in rows}

    async def dispatched_since(
        self, recipients: Sequence[str], since: datetime
    ) -> dict[str, list[datetime]]:
        """Returns when each recipient's dispatches that count toward the cap were
        decided, after `since` (at most the cap's limit each: an index-only scan)."""
        rows = await self.pool.fetch(_DISPATCHED_SINCE, list(recipients), since)
        return {row["recipient"]: row["times"] for row in rows}

    async def record(self, rows: Sequence[DecisionRow]) -> set[str]:
        """Records decisions, confirmations and deferrals in one transaction, under the
        request_ids' locks: one statement for new decisions, one for those that replace
        a deferral. Returns the request_ids recorded (another instance may have decided
        one first)."""
        new = [r for r in rows if r.replaces is None]
        replacing = [r for r in rows if r.replaces is not None]
        recorded: set[str] = set()
        async with self.pool.acquire() as conn, conn.transaction():
            await lock_request_ids(conn, DECISIONS, [r.request_id for r in rows])
            if new:
                inserted = await conn.fetch(_INSERT_DECISIONS, *_columns(new))
                recorded |= {row["request_id"] for row in inserted}
            if replacing:
                columns = [*_columns(replacing), [r.replaces for r in replacing]]
                replaced = await conn.fetch(_REPLACE_DEFERRED, *columns)
                recorded |= {row["request_id"] for row in replaced}
        return recorded


def _stored(row: Any) -> DecisionRow:
    outbound_json = row["outbound_json"]
    return DecisionRow(
        request_id=row["request_id"],
        recipient=row["recipient"],
        purpose=row["purpose"],
        decision=row["decision"],
        reason=row["reason"],
        consent_event_id=row["consent_event_id"],
        opt_out_event_id=row["opt_out_event_id"],
        decided_at=row["decided_at"],
        source_partition=row["source_partition"],
        source_offset=row["source_offset"],
        decision_json=row["decision_json"].encode(),
        outbound_json=None if outbound_json is None else outbound_json.encode(),
        source_topic=row["source_topic"],
        not_before=row["not_before"],
    )


def _columns(rows: Sequence[DecisionRow]) -> list[list[Any]]:
    # JSON goes as text (PostgreSQL parses it): bytes would be taken for bytea.
    return [
        [r.request_id for r in rows],
        [r.recipient for r in rows],
        [r.purpose for r in rows],
        [r.decision for r in rows],
        [r.reason for r in rows],
        [r.consent_event_id for r in rows],
        [r.opt_out_event_id for r in rows],
        [r.decided_at for r in rows],
        [r.source_partition for r in rows],
        [r.source_offset for r in rows],
        [r.decision_json.decode() for r in rows],
        [None if r.outbound_json is None else r.outbound_json.decode() for r in rows],
        [r.source_topic for r in rows],
        [r.not_before for r in rows],
        [None if r.request_json is None else r.request_json.decode() for r in rows],
    ]
