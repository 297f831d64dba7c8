"""The freshness fence (CONTRACT.md section 4) lets the gate decide only on a projection
that has applied everything acknowledged on consent.events.v1 before the batch."""

import asyncio
import time

from aiokafka import AIOKafkaConsumer

from services.dispatcher import metrics
from services.dispatcher.gate.store import GateStore
from shared.kafka.clients import end_offsets
from shared.kafka.failures import DependencyUnavailableError
from shared.topics import CONSENT_EVENTS


class FenceTimeoutError(DependencyUnavailableError):
    """The projection did not catch up in time: fail closed, dispatch nothing (and
    never blame the batch's records for it)."""


class Fence:
    def __init__(self, reader: AIOKafkaConsumer, store: GateStore, timeout_seconds: float) -> None:
        self.reader = reader
        self.store = store
        self.timeout_seconds = timeout_seconds

    async def wait(self) -> dict[int, int]:
        """Returns the end offsets waited for: the decision records them for the audit."""
        started = time.monotonic()
        # Every partition, not only the request's: producers' partitioners differ,
        # so a subject's events may sit anywhere (ARCHITECTURE.md section 3).
        ends = await end_offsets(self.reader, CONSENT_EVENTS)
        pause = 0.002
        while True:
            applied = await self.store.applied_positions(CONSENT_EVENTS)
            if all(applied.get(p, 0) >= end for p, end in ends.items()):
                metrics.FENCE_WAIT.observe(time.monotonic() - started)
                return ends
            if time.monotonic() - started > self.timeout_seconds:
                behind = {
                    p: (applied.get(p, 0), e) for p, e in ends.items() if applied.get(p, 0) < e
                }
                raise FenceTimeoutError(f"consent projection behind the log: {behind}")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)
