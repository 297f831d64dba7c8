"""STOP-to-enforced latency: from a webhook's 200 to the first time the consent API
answered opted_out for its subject, for STOPs during faults and outside them."""

import math

from chaos.history import STOP, Fault, History, Reply, next_start
from chaos.observed import Observed
from chaos.verdicts import Verdict


def _during(reply: Reply, faults: list[Fault]) -> bool:
    """Sent or acknowledged between a fault's start and its end: the heal, the
    component answering again and the system deciding again, whichever is last (a
    restarted inbound answers 200 before its consumer is back in the group)."""
    for f in faults:
        if f.healed_at is None:
            ended = math.inf
        else:
            ended = max(f.healed_at, f.back_at or f.healed_at, f.decided_again_at or f.healed_at)
        if f.started_at <= reply.first_sent_at <= ended:
            return True
        if reply.acked_at is not None and f.started_at <= reply.acked_at <= ended:
            return True
    return False


def _latencies(history: History, during: bool) -> tuple[list[float], int]:
    """The latencies, and how many STOPs were never seen enforced. A STOP whose
    subject said START before the API showed the opt-out (both applied in one
    batch after the consent service came back) had nothing to show: not counted."""
    stops = [s for s in history.acked_replies(STOP) if _during(s, history.faults) == during]
    done = sorted(s.enforced_at - s.acked_at for s in stops if s.enforced_at and s.acked_at)
    unseen = [s for s in stops if not s.enforced_at and next_start(history.replies, s) is None]
    return done, len(unseen)


def _latency_verdict(history: History, during: bool) -> Verdict:
    done, unenforced = _latencies(history, during)
    name = f"STOP-to-enforced {'during' if during else 'outside'} faults"
    if not done:
        return Verdict(name, f"no STOP measured ({unenforced} never enforced)", None)
    return Verdict(
        name,
        f"p50 {percentile(done, 50):.3f}s, p99 {percentile(done, 99):.3f}s, "
        f"max {done[-1]:.3f}s over {len(done)} STOPs (webhook 200 -> API opted_out)"
        + (f"; {unenforced} never seen enforced" if unenforced else ""),
        None,
    )


def stop_to_enforced_during_faults(history: History, observed: Observed) -> Verdict:
    return _latency_verdict(history, during=True)


def stop_to_enforced_outside_faults(history: History, observed: Observed) -> Verdict:
    return _latency_verdict(history, during=False)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest rank: a value that was measured, never an interpolation."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]
