"""Keeps dispatcher.sends, the sender's record of each request_id it POSTed, and reads
the gate's dispatcher.decisions, to POST only what was dispatched (docs/sender.md)."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict

from services.dispatcher.request_locks import SENDS, lock_request_ids
from services.dispatcher.sender.admission import GateDecision
from shared.contract.storable import cleaned

SendStatus = Literal["in_flight", "sent", "failed"]


class SendRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    request_id: str
    recipient: str | None
    status: SendStatus
    provider_message_id: str | None
    http_status: int | None
    error: str | None
    attempts: int
    first_attempt_at: datetime
    updated_at: datetime
    sent_at: datetime | None


# A finished row is final: neither an attempt nor another outcome may replace it
# (another instance that raced us after a rebalance keeps what it recorded). The
# table is partitioned by day of first_attempt_at, so no unique key holds a
# request_id to one row: each statement runs under the request_id's lock
# (request_locks.py), and either updates the row still in flight or, when there is
# none at all, inserts one.
_BEGIN_ATTEMPT = """
WITH again AS (
    UPDATE dispatcher.sends SET attempts = attempts + 1, updated_at = now()
    WHERE request_id = $1::text AND status = 'in_flight'
    RETURNING attempts
), first AS (
    INSERT INTO dispatcher.sends (request_id, recipient, status, attempts)
    SELECT $1::text, $2::text, 'in_flight', 1
    WHERE NOT EXISTS (SELECT FROM dispatcher.sends WHERE request_id = $1::text)
    RETURNING attempts
)
SELECT attempts FROM again UNION ALL SELECT attempts FROM first
"""

_FINISH = """
WITH finished AS (
    UPDATE dispatcher.sends
    SET status = $3::text, provider_message_id = $4::text, http_status = $5::int,
        error = $6::text, sent_at = CASE WHEN $3::text = 'sent' THEN now() END,
        updated_at = now()
    WHERE request_id = $1::text AND status = 'in_flight'
    RETURNING request_id
), first AS (
    INSERT INTO dispatcher.sends (request_id, recipient, status, provider_message_id,
        http_status, error, sent_at)
    SELECT $1::text, $2::text, $3::text, $4::text, $5::int, $6::text,
        CASE WHEN $3::text = 'sent' THEN now() END
    WHERE NOT EXISTS (SELECT FROM dispatcher.sends WHERE request_id = $1::text)
    RETURNING request_id
)
SELECT request_id FROM finished UNION ALL SELECT request_id FROM first
"""


# outbound_json as text, parsed here: what the sender compares must not depend on
# the codecs the pool was opened with.
_GATE_DECISIONS = """
SELECT request_id, decision, reason, recipient, outbound_json::text AS outbound_json
FROM dispatcher.decisions WHERE request_id = ANY($1::text[])
"""


class SendStore:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def rows(self, request_ids: Sequence[str]) -> dict[str, SendRow]:
        rows = await self.pool.fetch(
            "SELECT * FROM dispatcher.sends WHERE request_id = ANY($1::text[])",
            list(request_ids),
        )
        return {row["request_id"]: SendRow.model_validate(dict(row)) for row in rows}

    async def gate_decisions(self, request_ids: Sequence[str]) -> dict[str, GateDecision]:
        """Reads the dispatcher's decisions on these request_ids, with the bodies it
        published."""
        decisions = {}
        for row in await self.pool.fetch(_GATE_DECISIONS, list(request_ids)):
            outbound = row["outbound_json"]
            decisions[row["request_id"]] = GateDecision(
                decision=row["decision"],
                reason=row["reason"],
                recipient=row["recipient"],
                outbound=None if outbound is None else orjson.loads(outbound),
            )
        return decisions

    async def begin_attempt(self, request_id: str, recipient: str | None) -> int | None:
        """Counts an attempt before its POST, so a crash in the middle is visible;
        None when the request_id is already finished."""
        attempts: int | None = await self._locked(_BEGIN_ATTEMPT, request_id, recipient)
        return attempts

    async def finish(
        self,
        request_id: str,
        recipient: str | None,
        status: Literal["sent", "failed"],
        *,
        provider_message_id: str | None = None,
        http_status: int | None = None,
        error: str | None = None,
    ) -> bool:
        """Records the outcome; False when another sender finished it first."""
        done = await self._locked(
            _FINISH,
            request_id,
            cleaned(recipient),
            status,
            cleaned(provider_message_id),
            http_status,
            None if error is None else cleaned(error[:2000]),
        )
        return done is not None

    async def _locked(self, statement: str, request_id: str, *args: Any) -> Any:
        """Runs `statement` on request_id's row under its lock, returning its one value."""
        async with self.pool.acquire() as conn, conn.transaction():
            await lock_request_ids(conn, SENDS, [request_id])
            return await conn.fetchval(statement, request_id, *args)
