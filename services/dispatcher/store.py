"""The dispatcher's reads of the consent projection and its own schema."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.consent.state import SubjectState


class DecisionRow(BaseModel):
    model_config = ConfigDict(frozen=True)

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
    decision_json: dict[str, Any]
    outbound_json: dict[str, Any] | None


_INSERT_DECISIONS = """
INSERT INTO dispatcher.decisions (request_id, recipient, purpose, decision, reason,
    consent_event_id, opt_out_event_id, decided_at, source_partition, source_offset,
    decision_json, outbound_json)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::timestamptz[], $9::int[], $10::bigint[], $11::jsonb[], $12::jsonb[])
ON CONFLICT (request_id) DO NOTHING
RETURNING request_id
"""

_INSERT_CONFIRMATIONS = """
INSERT INTO dispatcher.confirmations (opt_out_event_id, request_id, dispatched_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
ON CONFLICT DO NOTHING
"""


class DispatcherStore:
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
        """The subjects' states and the tracking positions they reflect, read in one
        snapshot (the projector commits both in one transaction)."""
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = await conn.fetch(
                "SELECT subject, state FROM consent.subjects WHERE subject = ANY($1::text[])",
                list(subjects),
            )
            positions = await conn.fetch(
                "SELECT partition, next_offset FROM consent.tracking WHERE topic = $1", topic
            )
        states = {row["subject"]: SubjectState.model_validate(row["state"]) for row in rows}
        return states, {row["partition"]: row["next_offset"] for row in positions}

    async def decisions(self, request_ids: Sequence[str]) -> dict[str, DecisionRow]:
        rows = await self.pool.fetch(
            "SELECT * FROM dispatcher.decisions WHERE request_id = ANY($1::text[])",
            list(request_ids),
        )
        return {row["request_id"]: DecisionRow.model_validate(dict(row)) for row in rows}

    async def confirmed_opt_outs(self, opt_out_event_ids: Sequence[str]) -> set[str]:
        rows = await self.pool.fetch(
            "SELECT opt_out_event_id FROM dispatcher.confirmations"
            " WHERE opt_out_event_id = ANY($1::text[])",
            list(opt_out_event_ids),
        )
        return {row["opt_out_event_id"] for row in rows}

    async def dispatched_since(self, recipients: Sequence[str], since: datetime) -> dict[str, int]:
        rows = await self.pool.fetch(
            """SELECT recipient, count(*) AS n FROM dispatcher.decisions
               WHERE recipient = ANY($1::text[]) AND decided_at > $2
                 AND decision = 'dispatched' AND reason = 'consented'
               GROUP BY recipient""",
            list(recipients),
            since,
        )
        return {row["recipient"]: row["n"] for row in rows}

    async def record(self, rows: Sequence[DecisionRow]) -> set[str]:
        """Decisions and confirmations in one transaction; returns the request_ids
        this call inserted (another instance may have decided one first)."""
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetch(_INSERT_DECISIONS, *_columns(rows))
            confirmations = [r for r in rows if r.reason == "opt_out_confirmation"]
            if confirmations:
                await conn.execute(
                    _INSERT_CONFIRMATIONS,
                    [r.opt_out_event_id for r in confirmations],
                    [r.request_id for r in confirmations],
                    [r.decided_at for r in confirmations],
                )
            return {row["request_id"] for row in inserted}


def _columns(rows: Sequence[DecisionRow]) -> list[list[Any]]:
    fields = list(DecisionRow.model_fields)
    return [[getattr(row, field) for row in rows] for field in fields]
