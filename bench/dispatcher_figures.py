"""What the dispatcher benchmark reports: the sides' throughputs and their ratios,
the latencies at half load, RSS, the fence's wait and where a batch's time went."""

from pathlib import Path

import orjson

from bench.dispatcher_latency import Latency
from bench.dispatcher_sides import SideRun
from bench.figures import Report, percentile, spread
from bench.processes import histogram_quantile


def stage_notes(report: Report, label: str, path: Path, seconds: float) -> None:
    """Where the dispatcher's wall time went: per batch, each timed coroutine's mean;
    what handle() does not cover is the consume loop's own (getmany) time."""
    try:
        stages: dict[str, list[float]] = orjson.loads(path.read_bytes())
    except OSError:
        return
    handled = stages.get("Gate.handle", [0.0, 0.0, 0.0])
    batches = handled[1] or 1.0
    parts = sorted(stages.items(), key=lambda item: -item[1][0])
    report.note(
        f"{label}: {handled[1]:,.0f} batches, Gate.handle {handled[0]:.1f} s of the "
        f"{seconds:.1f} s measured; per batch (ms): "
        + ", ".join(f"{name} {total / batches * 1000:.1f}" for name, (total, _, _) in parts)
    )


def fence_figures(report: Report, label: str, metrics: dict[str, float]) -> None:
    count = metrics.get("dispatcher_fence_wait_seconds_count", 0.0)
    if not count:
        report.note(f"{label}: no fence wait observed in /metrics")
        return
    mean_ms = metrics["dispatcher_fence_wait_seconds_sum"] / count * 1000
    p50 = histogram_quantile(metrics, "dispatcher_fence_wait_seconds", 0.5) * 1000
    p99 = histogram_quantile(metrics, "dispatcher_fence_wait_seconds", 0.99) * 1000
    batches = metrics.get("dispatcher_batch_size_count", 0.0)
    mean_batch = metrics.get("dispatcher_batch_size_sum", 0.0) / batches if batches else 0.0
    report.figure(f"fence wait mean, {label}", mean_ms, "ms")
    report.note(
        f"{label}: fence wait p50 <= {p50:g} ms, p99 <= {p99:g} ms (histogram bucket bounds), "
        f"{count:,.0f} fences, {batches:,.0f} batches of {mean_batch:.0f} requests on average"
    )


def backlog_figures(
    report: Report,
    runs: dict[str, list[SideRun]],
    throughput: dict[str, float],
    repeats: int,
    log_dir: Path,
) -> None:
    """`throughput`: each side's median."""
    outcomes = runs["dispatcher"][0].outcomes
    report.note(
        "decisions of round 1: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items(), key=lambda i: -i[1]))
    )
    for side, unit in (
        ("dispatcher", "requests/s"),
        ("dispatcher-x2", "requests/s"),
        ("passthrough", "records/s"),
        ("passthrough-tx", "records/s"),
        ("passthrough-validate", "records/s"),
    ):
        report.figure(f"{side} throughput (median of {repeats})", throughput[side], unit)
        report.note(
            f"{side} runs: {spread([r.throughput for r in runs[side]])}; CPU "
            + ", ".join(f"{r.cpu:.0%}" for r in runs[side])
            + " of a core; NOT_ENOUGH_REPLICAS produce answers (per partition) "
            + ", ".join(str(r.retries) for r in runs[side])
        )
    report.figure(
        "dispatcher ÷ passthrough",
        throughput["dispatcher"] / throughput["passthrough"],
        "ratio",
        at_least=0.7,
    )
    # Scaled out: two instances in one group, on the same two cores as the broker
    # and PostgreSQL (CPU above is the two processes' sum).
    report.figure(
        "two dispatchers ÷ passthrough",
        throughput["dispatcher-x2"] / throughput["passthrough"],
        "ratio",
    )
    report.figure(
        "dispatcher ÷ transactional passthrough",
        throughput["dispatcher"] / throughput["passthrough-tx"],
        "ratio",
    )
    # The floor: validating each request as the dispatcher does, and nothing else
    # (no state, no decision, one output), already costs this share.
    report.figure(
        "validating passthrough ÷ passthrough",
        throughput["passthrough-validate"] / throughput["passthrough"],
        "ratio",
    )
    report.figure("dispatcher RSS peak, backlog", max(r.rss_mib for r in runs["dispatcher"]), "MiB")
    report.note(
        f"passthrough RSS peak {max(r.rss_mib for r in runs['passthrough']):.0f} MiB, "
        f"transactional {max(r.rss_mib for r in runs['passthrough-tx']):.0f} MiB"
    )
    fence_figures(report, "backlog", runs["dispatcher"][-1].metrics)
    last = runs["dispatcher"][-1]
    stage_notes(
        report,
        "backlog, last run",
        log_dir / f"dispatcher-{repeats - 1}.stages.json",
        last.seconds,
    )


def latency_figures(
    report: Report, latency: Latency, latency_seconds: float, warmup: float, log_dir: Path
) -> None:
    report.note(
        f"50 % load: {latency.rate:,.0f} requests/s asked, {latency.achieved:,.0f}/s sent "
        f"for {latency_seconds:g} s; {latency.measured:,} latencies after a "
        f"{warmup:g} s warm-up; the dispatcher used {latency.cpu:.0%} of a core; "
        f"{latency.retries} NOT_ENOUGH_REPLICAS produce answers (per partition)"
    )
    for q in (50, 99):
        report.figure(
            f"decision latency p{q} at 50 % load (ack -> decision read)",
            percentile(latency.from_ack, q) * 1000,
            "ms",
        )
    p50, p99 = (percentile(latency.from_send, q) * 1000 for q in (50, 99))
    report.note(f"from send() instead of the ack: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    p50, p99 = (percentile(latency.to_created, q) * 1000 for q in (50, 99))
    report.note(
        f"of which ack -> the decision's send() in the dispatcher (its CreateTime, ms "
        f"resolution): p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )
    p50, p99 = (percentile(latency.created_to_read, q) * 1000 for q in (50, 99))
    report.note(
        f"and that send() -> read (transaction commit, read_committed fetch): "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )
    report.figure("dispatcher RSS peak, 50 % load", latency.rss_mib, "MiB")
    fence_figures(report, "50 % load", latency.metrics)
    stage_notes(report, "50 % load", log_dir / "dispatcher-latency.stages.json", latency.seconds)
