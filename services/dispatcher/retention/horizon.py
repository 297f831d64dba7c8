"""Decides whether a horizon is long enough: pure, no I/O.

The dispatcher recognises a repeated request_id only while its decision row is kept,
DISPATCHER_HORIZON_DAYS. A topic the gate reads that keeps records longer could hand
it, after its group's offsets were reset or expired, a request whose row is gone: it
would be decided, and sent, again. So the horizon may not be shorter than the
retention of any topic the gate reads, nor than the frequency window, which counts
the decisions kept."""

import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Final

DAY_MS: Final = 86_400_000
FOREVER: Final = -1


class HorizonTooShortError(RuntimeError):
    """The horizon would forget request_ids that a topic can still redeliver."""


def retention_refusal(horizon_days: int, retentions: Mapping[str, int]) -> str | None:
    """Returns why the horizon is shorter than a topic's `retention.ms` (-1: for
    ever), naming both figures; None when it covers them all."""
    # Figures in milliseconds say "ms": the log's phone masking keeps them then.
    horizon_ms = horizon_days * DAY_MS
    problems = []
    for topic, retention in sorted(retentions.items()):
        if retention == FOREVER:
            problems.append(
                f"{topic} keeps its records for ever (retention.ms=-1): give it a bounded "
                f"retention.ms, at most {horizon_ms} ms"
            )
        elif retention > horizon_ms:
            problems.append(
                f"{topic} has retention.ms={retention} ms ({retention / DAY_MS:g} days): set "
                f"DISPATCHER_HORIZON_DAYS to at least {math.ceil(retention / DAY_MS)}, or "
                f"that retention.ms to at most {horizon_ms} ms"
            )
    if not problems:
        return None
    return (
        f"DISPATCHER_HORIZON_DAYS={horizon_days}, {horizon_ms} ms, is shorter than what "
        "the gate's topics keep, so a request_id it has forgotten could be redelivered "
        "and sent again: " + "; ".join(problems)
    )


def window_refusal(window: timedelta, horizon_days: int) -> str | None:
    """Returns why a frequency window longer than the horizon cannot be counted (the
    decisions it needs would be dropped); None when it fits."""
    if window <= timedelta(days=horizon_days):
        return None
    return (
        f"DISPATCHER_FREQUENCY_WINDOW_SECONDS={window // timedelta(seconds=1)} is longer "
        f"than DISPATCHER_HORIZON_DAYS={horizon_days}: the cap would miss decisions "
        "already dropped; lengthen the horizon or shorten the window"
    )
