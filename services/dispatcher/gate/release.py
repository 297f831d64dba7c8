"""Hands deferred requests back to the gate once their window opens.

Every `interval` seconds, at most `batch` due requests (oldest `not_before`
first) are written to messages.deferred.v1, which the gate reads beside
messages.requests.v1 and decides from the consent state of that moment. The
bound keeps a morning's burst from starving live traffic: the rest waits for
the next round. A request is marked released only after Kafka acknowledged it;
one marked but not decided within `redeliver_after` (a crash between the two) is
released again, and the gate decides each request_id once whatever the repeats."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer

from services.dispatcher import metrics
from shared.backoff import RetryPolicy
from shared.rounds import in_rounds

log = structlog.get_logger(__name__)

# Rows locked by one instance are skipped by another: two instances never hand
# the same request back at once.
_DUE = """
SELECT request_id, recipient, request_json::text AS request_json FROM dispatcher.deferred
WHERE not_before <= now() AND (released_at IS NULL OR released_at < now() - $2::interval)
ORDER BY not_before LIMIT $1
FOR UPDATE SKIP LOCKED
"""
_MARK = "UPDATE dispatcher.deferred SET released_at = now() WHERE request_id = ANY($1::text[])"


@dataclass
class Release:
    """Releases due deferred requests in bounded rounds, until stopped."""

    pool: Any
    producer: AIOKafkaProducer
    topic: str
    batch: int = 500
    interval: float = 1.0
    redeliver_after: timedelta = timedelta(seconds=60)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    healthy: bool = True
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def run(self) -> None:
        # One round per interval, however many wait: the bound on what a morning's
        # backlog takes from live traffic. A failed round loses nothing: the rows
        # stay and are released next round.
        await in_rounds(
            self.release_due,
            interval=self.interval,
            retry=self.retry,
            on_health=self._report,
            sleep=self.sleep,
            name="releasing deferred requests",
        )

    def _report(self, healthy: bool) -> None:
        self.healthy = healthy

    async def release_due(self) -> int:
        """Writes one round of due requests to the topic; returns how many."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_DUE, self.batch, self.redeliver_after)
            if not rows:
                return 0
            sent = [
                await self.producer.send(
                    self.topic,
                    value=row["request_json"].encode(),
                    key=row["recipient"].encode(),
                    headers=[("request_id", row["request_id"].encode())],
                )
                for row in rows
            ]
            await asyncio.gather(*sent)
            await conn.execute(_MARK, [row["request_id"] for row in rows])
        metrics.RELEASED.inc(len(rows))
        log.info("deferred requests released", count=len(rows))
        return len(rows)
