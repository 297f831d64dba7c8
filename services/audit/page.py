"""Renders the HTML page of the audit report: one file that opens offline."""

from html import escape
from pathlib import Path

from services.audit.charts import Bar, bar_chart
from services.audit.figures import LATENCY_BOUNDS
from services.audit.findings import Finding
from services.audit.history import LedgerRead
from services.audit.report import HTML_NAME, JSON_NAME, AuditReport, chain_text
from shared.contract.decisions import Reason

_SHOWN_FINDINGS = 5000  # the JSON has them all

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.verdict{display:inline-block;padding:4px 10px;border-radius:4px;color:#fff;font-weight:600}
.clean{background:#2e7d32}.failed{background:#c62828}.warn{background:#ef6c00}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f5f5f5}td.n{text-align:right}
.violation{color:#c62828;font-weight:600}.warning{color:#ef6c00}.intact{color:#2e7d32}
.muted{color:#666;font-size:12px}code{font-size:12px}
"""


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value * 1000:.0f} ms" if abs(value) < 10 else f"{value:.1f} s"


def _bound(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:g} ms"
    return f"{seconds:g} s" if seconds < 60 else f"{seconds / 60:g} min"


def _table(rows: list[tuple[str, object]]) -> str:
    body = "".join(
        f"<tr><th>{escape(k)}</th><td class=n>{escape(str(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{body}</table>"


def _timeline_chart(report: AuditReport) -> str:
    t = report.timeline
    if not t.buckets:
        return "<p class=muted>No decision in range.</p>"
    fmt = "%H:%M:%S" if t.width_seconds < 60 else "%m-%d %H:%M"
    bars = [Bar(b.start.strftime(fmt), b.by_reason) for b in t.buckets]
    present = [r.value for r in Reason if r.value in report.decisions_by_reason]
    return bar_chart(
        bars,
        title=f"Decisions by reason, per {t.width_seconds} s",
        series=present,
        every_label=max(1, len(bars) // 8),
    )


def _latency_chart(report: AuditReport) -> str:
    labels = [f"<{_bound(b)}" for b in LATENCY_BOUNDS] + [f"≥{_bound(LATENCY_BOUNDS[-1])}"]
    counts = report.latency.histogram
    bars = [Bar(label, {"count": n}) for label, n in zip(labels, counts, strict=True)]
    return bar_chart(
        bars, title="Opt-out to enforcement latency (opt-outs per bin)", series=["count"]
    )


def _frequency_chart(report: AuditReport) -> str:
    f = report.frequency
    top = max([f.limit + 1, *f.distribution]) if f.distribution else f.limit + 1
    bars = [Bar(str(n), {"count": f.distribution.get(n, 0)}) for n in range(1, top + 1)]
    return bar_chart(
        bars,
        title="Consented messages per recipient per day (recipient-days)",
        series=["count"],
        marker=(float(f.limit), f"limit {f.limit} per {f.window_seconds}s"),
        every_label=max(1, len(bars) // 20),
    )


def _finding_row(f: Finding) -> str:
    events = "<br>".join(
        f"<code>{escape(e.type)} {escape(e.event_id)} @{e.partition}:{e.offset}</code>"
        for e in f.events
    )
    decisions = "<br>".join(
        f"<code>{escape(d.decision)}/{escape(d.reason)} @{d.partition}:{d.offset}</code>"
        for d in f.decisions
    )
    cells = [
        f"<span class={f.severity.value}>{escape(f.severity.value)}</span>",
        escape(f.kind.value),
        escape(f.at.isoformat()),
        f"<code>{escape(f.request_id or '')}</code>",
        escape(f.recipient or ""),
        escape(f.purpose or ""),
        escape(f.recorded or ""),
        escape(f.recomputed or ""),
        escape(f.detail),
        events,
        decisions,
    ]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _findings(report: AuditReport) -> str:
    if not report.findings:
        return "<p>No finding.</p>"
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "severity",
            "kind",
            "at",
            "request_id",
            "recipient",
            "purpose",
            "recorded",
            "recomputed",
            "detail",
            "events",
            "decisions",
        )
    )
    rows = "".join(_finding_row(f) for f in report.findings[:_SHOWN_FINDINGS])
    more = len(report.findings) - _SHOWN_FINDINGS
    note = f"<p class=muted>{more} more in the JSON report.</p>" if more > 0 else ""
    return f"<table><tr>{head}</tr>{rows}</table>{note}"


def _ledger_row(ledger: LedgerRead) -> str:
    counts = (ledger.entries, ledger.opened, ledger.erased, ledger.unreadable)
    chain = f"<td class={'intact' if ledger.intact else 'violation'}>{escape(chain_text(ledger))}"
    return (
        f"<tr><td><code>{escape(ledger.ledger)}</code></td>"
        + "".join(f"<td class=n>{n}</td>" for n in counts)
        + f"{chain}</td></tr>"
    )


def _ledgers(report: AuditReport) -> str:
    read = report.from_ledgers
    if read is None:
        return ""
    head = "".join(
        f"<th>{h}</th>"
        for h in ("ledger", "entries", "opened", "erased (erased subject)", "unreadable", "chain")
    )
    rows = "".join(_ledger_row(ledger) for ledger in read.ledgers)
    aside = _table(
        [
            ("requests of erased people (not judged)", read.requests_of_erased),
            ("events opened after their person's erasure (not folded)", read.events_of_erased),
            ("decisions opened after their recipient's erasure", read.decisions_of_erased),
        ]
    )
    return (
        "<h2>Ledgers</h2><p>The consent events and the decisions were read from the "
        "ledgers, every partition's chain checked; what is about erased people is "
        "counted, never judged, but for a dispatch to them.</p>"
        f"<table><tr>{head}</tr>{rows}</table>{aside}"
    )


def render_html(report: AuditReport) -> str:
    s, lat, freq, rec = report.scope, report.latency, report.frequency, report.recomputed
    if report.violations:
        badge = '<span class="verdict failed">violations found</span>'
    elif report.warnings:
        badge = '<span class="verdict warn">warnings</span>'
    else:
        badge = '<span class="verdict clean">clean</span>'
    key = [
        ("decisions checked", report.decisions_checked),
        ("recomputed and equal", f"{rec.agreeing} / {rec.decisions}"),
        ("equal only past the fence", rec.beyond_fence),
        ("requests checked / pending", f"{report.requests_checked} / {report.requests_pending}"),
        ("violations", report.violations),
        ("warnings", report.warnings),
        ("opt-outs (confirmed, pending)", f"{lat.opt_outs} ({lat.confirmed}, {lat.pending})"),
        ("opt-out to enforcement p50", _fmt(lat.p50)),
        ("opt-out to enforcement p95", _fmt(lat.p95)),
        ("opt-out to enforcement max", _fmt(lat.max)),
        ("opt-outs no decision saw yet", lat.unmeasured),
        ("frequency limit", f"{freq.limit} per {freq.window_seconds} s"),
        ("max consented per recipient per day", freq.max_per_day),
        ("recipient-days over the limit", freq.days_over_limit),
        (
            "peak in one window / recipients at the limit",
            f"{freq.window_peak} / {freq.recipients_at_limit}",
        ),
        ("exit code", report.exit_code),
    ]
    scope = (
        f"range {escape(str(s.since or 'the beginning'))} .. {escape(str(s.until or 'the end'))}"
        f" · subjects: {escape(', '.join(s.subjects) or 'all')} · {escape(s.bootstrap)}"
        f" · log as of {escape(report.as_of.isoformat())}"
        + (" · read from the ledgers" if report.from_ledgers is not None else "")
    )
    reasons = _table(list(report.decisions_by_reason.items()))
    read = _table(
        [*report.read.items(), *((f"unreadable {k}", v) for k, v in report.unreadable.items())]
    )
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        "<title>Consent audit (clause 6.3)</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>Consent audit (policy clause 6.3) {badge}</h1>"
        f"<p class=muted>{scope}; generated {escape(report.generated_at.isoformat())}</p>"
        f"<h2>Key figures</h2>{_table(key)}"
        f"<h2>Decisions by reason over time</h2>{_timeline_chart(report)}{reasons}"
        f"<h2>Opt-out to enforcement latency</h2>{_latency_chart(report)}"
        f"<h2>Messages per recipient per day against the frequency limit</h2>"
        f"{_frequency_chart(report)}"
        f"{_ledgers(report)}"
        f"<h2>Findings ({len(report.findings)})</h2>{_findings(report)}"
        f"<h2>Records read</h2>{read}"
        "</body></html>\n"
    )


def write_report(report: AuditReport, out_dir: Path) -> tuple[Path, Path]:
    """Writes the report as JSON and as its HTML page into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / JSON_NAME, out_dir / HTML_NAME
    json_path.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    html_path.write_text(render_html(report), encoding="utf-8")
    return json_path, html_path
