"""Computes exponential backoff with full jitter, for every retry of a failed step: a
consumer's batch and the sender's POST wait by the same rule."""

import random
from collections.abc import Callable


class RetryPolicy:
    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self.first = first
        self.cap = cap

    def delay(self, attempt: int, draw: Callable[[], float] = random.random) -> float:
        """Returns the wait after the attempt-th failure (0-based): anywhere from nothing to
        `first` doubled per attempt, never above `cap`. Full jitter keeps several
        instances from retrying in step."""
        # The exponent is bounded: past ~30 doublings the cap rules anyway, and an
        # outage of a thousand failed attempts must not overflow the float.
        return draw() * min(self.cap, self.first * 2.0 ** min(attempt, 64))
