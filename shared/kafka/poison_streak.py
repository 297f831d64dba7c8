"""Counts how many poison records came in a row, and tells whether the loop should blame
itself."""

import time
from collections.abc import Callable


class PoisonStreak:
    """Counts records dead-lettered since the last one handled. At `limit` in a
    row the fault is more likely the service's own (a bug, a bad deploy) than
    the records', so isolation pauses for `cooldown` seconds; then the streak
    starts again, so that a run of hostile records slows the loop down without
    stopping it."""

    def __init__(
        self, limit: int, cooldown: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.cooldown = cooldown
        self.count = 0
        self._clock = clock
        self._full_at: float | None = None

    def add_poison(self) -> None:
        self.count += 1

    def reset(self) -> None:
        """Starts over: a record was handled, so the loop itself works."""
        self.count = 0
        self._full_at = None

    def blaming_itself(self) -> bool:
        """Tells whether the streak is at its limit and its cool-down still runs."""
        if self.count < self.limit:
            return False
        now = self._clock()
        if self._full_at is None:
            self._full_at = now
        if now - self._full_at < self.cooldown:
            return True
        self.reset()
        return False
