"""Keeps dispatcher.sends, the sender's record of each request_id it POSTed, and reads
the gate's dispatcher.decisions, to POST only what was dispatched (docs/sender.md)."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict

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
# (another instance that raced us after a rebalance keeps what it recorded).
_BEGIN_ATTEMPT = """
INSERT INTO dispatcher.sends (request_id, recipient, status, attempts)
VALUES ($1, $2, 'in_flight', 1)
ON CONFLICT (request_id) DO UPDATE
    SET attempts = dispatcher.sends.attempts + 1, updated_at = now()
    WHERE dispatcher.sends.status = 'in_flight'
RETURNING attempts
"""

_FINISH = """
INSERT INTO dispatcher.sends (request_id, recipient, status, provider_message_id,
    http_status, error, sent_at)
VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $3 = 'sent' THEN now() END)
ON CONFLICT (request_id) DO UPDATE
    SET status = EXCLUDED.status,
        provider_message_id = EXCLUDED.provider_message_id,
        http_status = EXCLUDED.http_status,
        error = EXCLUDED.error,
        sent_at = EXCLUDED.sent_at,
        updated_at = now()
    WHERE dispatcher.sends.status = 'in_flight'
RETURNING request_id
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
        attempts: int | None = await self.pool.fetchval(_BEGIN_ATTEMPT, request_id, recipient)
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
        done = await self.pool.fetchval(
            _FINISH,
            request_id,
            cleaned(recipient),
            status,
            cleaned(provider_message_id),
            http_status,
            None if error is None else cleaned(error[:2000]),
        )
        return done is not None
