"""Tracks a consume loop running as a task: its health, and a graceful stop."""

import asyncio
from dataclasses import dataclass
from typing import Protocol


class _Loop(Protocol):
    @property
    def healthy(self) -> bool: ...
    def stop(self) -> None: ...


@dataclass
class RunningConsumer:
    """Holds the task of one consume loop, and the loop it runs."""

    loop: _Loop
    task: "asyncio.Task[None]"

    @property
    def healthy(self) -> bool:
        """The loop still runs and its last batch did not fail."""
        return not self.task.done() and self.loop.healthy

    async def stop(self, drain_seconds: float = 0.0) -> None:
        """Ends the loop; with `drain_seconds`, a batch in progress may finish first."""
        self.loop.stop()
        if drain_seconds > 0:
            await asyncio.wait({self.task}, timeout=drain_seconds)
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
