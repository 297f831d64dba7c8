"""Computes the audit's figures (contract section 8), pure: decisions by reason and over
time, opt-out to enforcement latency, messages per recipient per day, and, read from
the ledgers, what each held and what was about erased people."""

import math
from collections import Counter
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from services.audit.history import History, LedgerRead, LoggedDecision
from services.audit.opt_out_checks import OptOutOutcome
from shared.contract.decisions import Decision, Reason
from shared.dispatch.rules import FrequencyPolicy
from shared.identifiers import mask_identifier

# Bucket widths for the timeline: the narrowest that gives at most _MAX_BUCKETS.
_WIDTHS = [timedelta(seconds=s) for s in (1, 10, 60, 300, 900, 3600, 6 * 3600, 86_400, 7 * 86_400)]
_MAX_BUCKETS = 60
# Latency histogram bounds, seconds (the last bin is open).
LATENCY_BOUNDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class Bucket(BaseModel):
    model_config = ConfigDict(frozen=True)

    start: datetime
    by_reason: dict[str, int]


class Timeline(BaseModel):
    model_config = ConfigDict(frozen=True)

    width_seconds: int
    buckets: list[Bucket]


class Latency(BaseModel):
    """Holds the seconds from an OptedOut's log time to the recipient's first decision
    whose fence covered it; opt-outs no later decision saw are `unmeasured`."""

    model_config = ConfigDict(frozen=True)

    opt_outs: int
    measured: int
    unmeasured: int
    p50: float | None
    p95: float | None
    max: float | None
    histogram: list[int]  # counts per LATENCY_BOUNDS bin, the last one open-ended
    confirmed: int
    pending: int


class RecipientDay(BaseModel):
    model_config = ConfigDict(frozen=True)

    recipient: str  # masked
    day: str
    consented: int
    confirmations: int


class Frequency(BaseModel):
    """Counts dispatched messages per recipient per UTC day; the frequency limit is per
    rolling window, and `window_peak` is the most consented sends in any one window."""

    model_config = ConfigDict(frozen=True)

    limit: int
    window_seconds: int
    recipient_days: int
    distribution: dict[int, int]  # consented messages in a day -> recipient-days
    max_per_day: int
    days_over_limit: int
    busiest: list[RecipientDay]
    window_peak: int
    recipients_at_limit: int


def by_reason(checked: list[LoggedDecision]) -> dict[str, int]:
    counts = Counter(x.decision.reason.value for x in checked)
    return {r.value: counts[r.value] for r in Reason if counts[r.value]}


def timeline(checked: list[LoggedDecision]) -> Timeline:
    if not checked:
        return Timeline(width_seconds=60, buckets=[])
    times = [x.decision.decided_at for x in checked]
    first, last = min(times), max(times)
    width = next((w for w in _WIDTHS if (last - first) / w < _MAX_BUCKETS), _WIDTHS[-1])
    seconds = int(width.total_seconds())
    origin = datetime.fromtimestamp(first.timestamp() // seconds * seconds, UTC)
    counts: dict[int, Counter[str]] = {}
    for x in checked:
        index = int((x.decision.decided_at - origin) / width)
        counts.setdefault(index, Counter())[x.decision.reason.value] += 1
    buckets = [
        Bucket(start=origin + i * width, by_reason=dict(counts.get(i, Counter())))
        for i in range(max(counts) + 1)
    ]
    return Timeline(width_seconds=seconds, buckets=buckets)


def percentile(values: list[float], q: float) -> float | None:
    """Returns the nearest rank: a value that occurred, never an interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latency(outcomes: list[OptOutOutcome]) -> Latency:
    samples = [s for o in outcomes if (s := o.latency_seconds) is not None]
    histogram = [0] * (len(LATENCY_BOUNDS) + 1)
    for sample in samples:
        histogram[next((i for i, b in enumerate(LATENCY_BOUNDS) if sample < b), -1)] += 1
    return Latency(
        opt_outs=len(outcomes),
        measured=len(samples),
        unmeasured=len(outcomes) - len(samples),
        p50=percentile(samples, 0.50),
        p95=percentile(samples, 0.95),
        max=max(samples) if samples else None,
        histogram=histogram,
        confirmed=sum(1 for o in outcomes if o.confirmation is not None),
        pending=sum(1 for o in outcomes if o.pending),
    )


def frequency(
    checked: list[LoggedDecision], policy: FrequencyPolicy, window_peak: dict[str, int]
) -> Frequency:
    consented: Counter[tuple[str, str]] = Counter()
    confirmations: Counter[tuple[str, str]] = Counter()
    for x in checked:
        d = x.decision
        if d.decision is not Decision.DISPATCHED or not d.recipient:
            continue
        key = (d.recipient, d.decided_at.astimezone(UTC).date().isoformat())
        (consented if d.reason is Reason.CONSENTED else confirmations)[key] += 1
    days = set(consented) | set(confirmations)
    busiest = sorted(days, key=lambda k: (-consented[k], -confirmations[k], k))[:10]
    peaks = [window_peak.get(r, 0) for r in {r for r, _ in days}]
    return Frequency(
        limit=policy.limit,
        window_seconds=int(policy.window.total_seconds()),
        recipient_days=len(days),
        distribution=dict(sorted(Counter(consented[k] for k in days).items())),
        max_per_day=max((consented[k] for k in days), default=0),
        days_over_limit=sum(1 for k in days if consented[k] > policy.limit),
        busiest=[
            RecipientDay(
                recipient=mask_identifier(r),
                day=day,
                consented=consented[(r, day)],
                confirmations=confirmations[(r, day)],
            )
            for r, day in busiest
        ],
        window_peak=max(peaks, default=0),
        recipients_at_limit=sum(1 for p in peaks if p >= policy.limit),
    )


class FromLedgers(BaseModel):
    """What an audit from the ledgers read: each ledger whole (its erased entries are
    erased subjects, counted and never judged; its chain per partition), and what was
    set aside as about erased people: their requests (owed no decision the ledger can
    show), and the events and decisions that opened after their erasure (of those, only
    a dispatch is judged)."""

    model_config = ConfigDict(frozen=True)

    ledgers: list[LedgerRead]
    requests_of_erased: int
    events_of_erased: int
    decisions_of_erased: int

    @property
    def intact(self) -> bool:
        return all(ledger.intact for ledger in self.ledgers)


def from_ledgers(history: History) -> FromLedgers | None:
    """None for a history read from the topics."""
    if not history.ledgers:
        return None
    return FromLedgers(
        ledgers=list(history.ledgers),
        requests_of_erased=history.erased_requests,
        events_of_erased=history.erased_events,
        decisions_of_erased=len(history.about_erased),
    )
