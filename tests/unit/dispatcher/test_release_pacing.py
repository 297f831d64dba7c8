"""The release hands deferred requests back one bounded round per interval,
however many wait, and retries a failed round with backoff."""

import asyncio
from typing import Any

import pytest

from services.dispatcher.gate.release import Release


class _Rounds(Release):
    """Releases a full round every time, failing the rounds listed in `fail`."""

    def __init__(self, rounds: int, fail: frozenset[int] = frozenset()) -> None:
        super().__init__(pool=None, producer=None, topic="t", batch=500, interval=1.0)  # type: ignore[arg-type]
        self.rounds, self.fail, self.done = rounds, fail, 0
        self.slept: list[float] = []
        self.sleep = self._record

    async def release_due(self) -> int:
        self.done += 1
        if self.done > self.rounds:  # a round the loop took without waiting
            raise AssertionError(f"round {self.done} came without a wait")
        if self.done in self.fail:
            raise ConnectionError("the database went away")
        return self.batch

    async def _record(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.done >= self.rounds:
            raise asyncio.CancelledError


async def _run(release: Any) -> None:
    # A loop that never waits would never reach the cancelling sleep: bound it.
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(release.run(), timeout=5)


async def test_a_backlog_is_released_one_round_per_interval() -> None:
    release = _Rounds(rounds=5)

    await _run(release)

    assert release.done == 5
    assert len(release.slept) == 5
    assert all(0.9 < s <= 1.0 for s in release.slept)  # full rounds still wait


async def test_a_failed_round_is_retried_and_the_loop_reports_it() -> None:
    release = _Rounds(rounds=3, fail=frozenset({2}))
    health: list[bool] = []
    original = release.release_due

    async def watched() -> int:
        health.append(release.healthy)
        return await original()

    release.release_due = watched  # type: ignore[method-assign]

    await _run(release)

    assert release.done == 3
    assert health == [True, True, False]  # unhealthy after the failure, until a round passes
    assert release.healthy
