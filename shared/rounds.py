"""Runs a background step of a service in rounds, until cancelled: the dispatcher's
release of deferred requests every second and its partition maintenance every hour,
the consent service's erasure job every minute."""

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from shared.backoff import RetryPolicy

log = structlog.get_logger(__name__)


async def in_rounds(
    step: Callable[[], Awaitable[object]],
    *,
    interval: float,
    retry: RetryPolicy,
    on_health: Callable[[bool], None],
    sleep: Callable[[float], Awaitable[None]],
    name: str,
) -> None:
    """Runs `step` once per `interval`, the first at once. A failed round is logged,
    reported unhealthy and retried with backoff: its work is still there next round."""
    failures = 0
    while True:
        started = time.monotonic()
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            on_health(False)
            log.exception(f"{name} failed, retrying")
            await sleep(retry.delay(failures))
            failures += 1
            continue
        on_health(True)
        failures = 0
        # One round per interval, however long a round took: the bound on what a
        # step takes from the gate's live traffic.
        await sleep(max(0.0, interval - (time.monotonic() - started)))
