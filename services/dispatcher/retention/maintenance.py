"""Creates the day partitions ahead and drops those past the horizon, at start and then
every hour, through `dispatcher.maintain_partitions`: a function the schema's owner
defined (SECURITY DEFINER), so the dispatcher's role needs no right to create or
drop a table, and cannot drop a day the horizon keeps
(deploy/migrations/dispatcher/005_day_partitions.sql)."""

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import structlog

from services.dispatcher import metrics
from shared.backoff import RetryPolicy
from shared.rounds import in_rounds

log = structlog.get_logger(__name__)

# Days made ahead of today: rows keep landing in day partitions (not the default
# one) while the maintenance fails, for that long.
AHEAD_DAYS: Final = 3
# A day's partitions are made days ahead and dropped a day late at most: once an
# hour is plenty, and it keeps the brief locks of creating and dropping rare.
INTERVAL_SECONDS: Final = 3600.0

_MAINTAIN = "SELECT table_name, partition_name, action FROM dispatcher.maintain_partitions($1, $2)"


class PartitionChange(NamedTuple):
    """What one round did to one partition: created, dropped, or kept past the horizon
    because a request in it still waits for its release."""

    table: str
    partition: str
    action: str


def by_action(changes: Sequence[PartitionChange]) -> dict[str, list[str]]:
    """Groups the partitions by what was done to them, for the log."""
    grouped: dict[str, list[str]] = {}
    for change in changes:
        grouped.setdefault(change.action, []).append(change.partition)
    return grouped


@dataclass
class PartitionMaintenance:
    pool: Any
    horizon_days: int
    ahead_days: int = AHEAD_DAYS
    interval: float = INTERVAL_SECONDS
    # A failed round (a lock not granted within the function's lock_timeout) is
    # tried again within minutes, not an hour.
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(first=5.0, cap=300.0))
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def run(self) -> None:
        await in_rounds(
            self.maintain,
            interval=self.interval,
            retry=self.retry,
            on_health=lambda healthy: metrics.PARTITIONS_FAILING.set(0 if healthy else 1),
            sleep=self.sleep,
            name="maintaining the day partitions",
        )

    async def maintain(self) -> list[PartitionChange]:
        """Runs one round; returns what it changed."""
        rows = await self.pool.fetch(_MAINTAIN, self.horizon_days, self.ahead_days)
        changes = [PartitionChange(*row) for row in rows]
        for change in changes:
            metrics.PARTITIONS.labels(change.table, change.action).inc()
        metrics.PARTITIONS_MAINTAINED.set(time.time())
        if changes:
            log.info(
                "day partitions maintained", horizon_days=self.horizon_days, **by_action(changes)
            )
        return changes
