"""Builds the audit report: JSON for machines, one self-contained HTML file for people
(inline SVG, inline CSS, no script, no external asset), and a console summary."""

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from services.audit import figures
from services.audit.findings import Finding, Severity
from services.audit.history import LedgerRead
from services.audit.recompute import AuditResult
from shared.dispatch.rules import FrequencyPolicy

JSON_NAME, HTML_NAME = "audit.json", "audit.html"


class Recomputed(BaseModel):
    model_config = ConfigDict(frozen=True)

    decisions: int
    agreeing: int
    beyond_fence: int  # agreeing only on a view holding events past the decision's fence


class Scope(BaseModel):
    model_config = ConfigDict(frozen=True)

    bootstrap: str
    since: datetime | None
    until: datetime | None
    subjects: list[str]  # masked; empty: every subject
    strict: bool
    confirmation_deadline_seconds: float
    settle_seconds: float
    # Where the consent events and the decisions were read: the topics, or the ledgers
    # (--from-ledger; requests come from their topic either way).
    source: Literal["topics", "ledgers"] = "topics"


class AuditReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    generated_at: datetime
    as_of: datetime  # when the end offsets were taken: the replay covers the log up to then
    replay_seconds: float
    scope: Scope
    positions: dict[str, dict[str, tuple[int, int]]]  # topic -> partition -> (start, end)
    read: dict[str, int]  # topic -> records read
    unreadable: dict[str, int]
    decisions_checked: int
    requests_checked: int
    requests_pending: int
    recomputed: Recomputed
    decisions_by_reason: dict[str, int]
    timeline: figures.Timeline
    latency: figures.Latency
    frequency: figures.Frequency
    findings_by_kind: dict[str, int]
    violations: int
    warnings: int
    exit_code: int
    findings: list[Finding]
    from_ledgers: figures.FromLedgers | None = None  # None: read from the topics


def build_report(
    result: AuditResult,
    *,
    scope: Scope,
    frequency: FrequencyPolicy,
    generated_at: datetime,
    as_of: datetime,
    replay_seconds: float,
    positions: dict[str, dict[str, tuple[int, int]]],
    read: dict[str, int],
    unreadable: dict[str, int],
    from_ledgers: figures.FromLedgers | None = None,
) -> AuditReport:
    violations = sum(1 for f in result.findings if f.severity is Severity.VIOLATION)
    warnings = len(result.findings) - violations
    failed = violations > 0 or (scope.strict and warnings > 0)
    return AuditReport(
        generated_at=generated_at,
        as_of=as_of,
        replay_seconds=replay_seconds,
        scope=scope,
        positions=positions,
        read=read,
        unreadable=unreadable,
        decisions_checked=len(result.checked),
        requests_checked=result.requests_checked,
        requests_pending=result.requests_pending,
        recomputed=Recomputed(
            decisions=len(result.recomputations),
            agreeing=sum(1 for r in result.recomputations if r.agrees),
            beyond_fence=sum(1 for r in result.recomputations if r.agrees and r.beyond_fence),
        ),
        decisions_by_reason=figures.by_reason(result.checked),
        timeline=figures.timeline(result.checked),
        latency=figures.latency(result.opt_outs),
        frequency=figures.frequency(result.checked, frequency, result.window_peak),
        findings_by_kind=dict(Counter(f.kind.value for f in result.findings).most_common()),
        violations=violations,
        warnings=warnings,
        exit_code=1 if failed else 0,
        findings=result.findings,
        from_ledgers=from_ledgers,
    )


def _seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value * 1000:.0f} ms" if abs(value) < 10 else f"{value:.1f} s"


def chain_text(ledger: LedgerRead) -> str:
    partitions = len(ledger.partitions)
    if ledger.intact:
        return f"chain intact in {partitions}/{partitions} partitions"
    broken = "; ".join(
        f"partition {p} at offset{'s' if len(c.breaks) > 1 else ''} "
        + ", ".join(map(str, c.breaks))
        for p, c in ledger.partitions.items()
        if not c.intact
    )
    return f"chain BROKEN: {broken}"


def ledger_lines(read: figures.FromLedgers) -> list[str]:
    lines = ["  source     the ledgers (--from-ledger); requests from their topic"]
    for ledger in read.ledgers:
        lines.append(
            f"  ledger     {ledger.ledger}: {ledger.entries} entries, {ledger.erased} erased "
            f"(erased subject), {ledger.unreadable} unreadable; {chain_text(ledger)}"
        )
    lines.append(
        f"  erased     set aside as about erased people: {read.requests_of_erased} requests, "
        f"{read.events_of_erased} events, {read.decisions_of_erased} decisions"
    )
    return lines


def console_summary(report: AuditReport, paths: tuple[Path, Path] | None = None) -> str:
    s, lat, freq, rec = report.scope, report.latency, report.frequency, report.recomputed
    reasons = ", ".join(f"{k} {v}" for k, v in report.decisions_by_reason.items()) or "none"
    kinds = ", ".join(f"{k} {v}" for k, v in report.findings_by_kind.items()) or "none"
    unreadable = sum(report.unreadable.values())
    verdict = (
        "VIOLATIONS FOUND"
        if report.violations
        else ("WARNINGS (strict)" if report.exit_code else "clean")
    )
    lines = [
        f"audit of {s.bootstrap} as of {report.as_of:%Y-%m-%d %H:%M:%S}Z "
        f"({report.replay_seconds:.1f}s)",
        f"  range      {s.since or 'the beginning'} .. {s.until or 'the end'}; subjects: "
        + (", ".join(s.subjects) if s.subjects else "all"),
        "  read       "
        + ", ".join(f"{t} {n}" for t, n in report.read.items())
        + (f" ({unreadable} unreadable)" if unreadable else ""),
        f"  decisions  {report.decisions_checked} checked; recomputed {rec.agreeing}/"
        f"{rec.decisions} equal"
        + (f" ({rec.beyond_fence} on events past their fence)" if rec.beyond_fence else ""),
        f"  by reason  {reasons}",
        f"  requests   {report.requests_checked} checked, {report.requests_pending} pending",
        f"  opt-outs   {lat.opt_outs}: {lat.confirmed} confirmed, {lat.pending} pending; "
        f"to enforcement p50 {_seconds(lat.p50)}, p95 {_seconds(lat.p95)}, "
        f"max {_seconds(lat.max)} ({lat.unmeasured} not yet seen by a decision)",
        f"  frequency  limit {freq.limit} per {freq.window_seconds}s; per recipient per day max "
        f"{freq.max_per_day} over {freq.recipient_days} recipient-days; peak in a window "
        f"{freq.window_peak}, {freq.recipients_at_limit} recipients at the limit",
        f"  findings   {report.violations} violations, {report.warnings} warnings ({kinds})",
    ]
    if report.from_ledgers is not None:
        lines[2:2] = ledger_lines(report.from_ledgers)
    if paths is not None:
        lines.append(f"  report     {paths[1]}  {paths[0]}")
    lines.append(f"  verdict    {verdict} (exit {report.exit_code})")
    return "\n".join(lines)
