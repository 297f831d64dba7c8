"""The run's tables: the invariants with their verdicts, then the faults."""

from collections import Counter
from collections.abc import Sequence

from chaos.history import History
from chaos.observed import Observed
from chaos.verdicts import Verdict

MAX_EXAMPLES = 5


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def verdict_word(verdict: Verdict) -> str:
    if verdict.held is None:
        return "figure"
    return "held" if verdict.held else "FAILED"


def invariants_table(verdicts: list[Verdict]) -> str:
    rows = [(v.name, verdict_word(v), v.measured) for v in verdicts]
    return table(("invariant", "verdict", "measured"), rows)


def faults_table(history: History) -> str:
    rows = []
    for i, f in enumerate(history.faults, 1):
        healed = f"{f.healed_at - f.started_at:.1f}" if f.healed_at else "-"
        back = f"{f.back_at - f.healed_at:.1f}" if f.back_at and f.healed_at else "-"
        again = f"{f.recovery_seconds:.1f}" if f.recovery_seconds is not None else "NEVER"
        rows.append(
            (
                str(i),
                f.kind,
                f.target,
                f"{f.started_at - history.started_at:.1f}",
                healed,
                back,
                again,
                f.note,
            )
        )
    return table(
        (
            "#",
            "fault",
            "target",
            "at (s into run)",
            "healed after (s)",
            "back after heal (s)",
            "decides again after heal (s)",
            "note",
        ),
        rows,
    )


def traffic_summary(history: History, observed: Observed) -> str:
    kinds = Counter(r.kind.value for r in history.acked_requests())
    replies = Counter(r.kind for r in history.acked_replies())
    statuses = history.webhook_statuses()
    poison = Counter(p.topic for p in history.poison)
    minutes = (history.ended_at - history.started_at) / 60
    return "\n".join(
        [
            f"traffic over {minutes:.1f} min (seed {history.seed}): "
            f"{len(history.grants)} ConsentGranted acknowledged, "
            f"requests acknowledged {dict(sorted(kinds.items()))}, "
            f"{history.producer_retries} producer retries",
            f"webhooks acknowledged {dict(sorted(replies.items()))}; "
            f"every attempt's status {dict(sorted(statuses.items()))}",
            f"poison records {dict(sorted(poison.items()))}; "
            f"{len(observed.decisions)} decisions, {sum(observed.outbound.values())} sends",
        ]
    )


def render(history: History, observed: Observed, verdicts: list[Verdict]) -> str:
    parts = [
        traffic_summary(history, observed),
        "",
        faults_table(history),
        "",
        invariants_table(verdicts),
    ]
    if history.unexpected_exits:
        parts += ["", "services that exited by themselves (restarted, as a supervisor would):"]
        parts += [f"  {line}" for line in history.unexpected_exits]
    for v in verdicts:
        if v.examples:
            parts += ["", f"{v.name} ({verdict_word(v)}): {len(v.examples)} found, e.g."]
            parts += [f"  {example}" for example in v.examples[:MAX_EXAMPLES]]
    failed = [v.name for v in verdicts if v.held is False]
    parts += ["", f"FAILED: {', '.join(failed)}" if failed else "every invariant held"]
    return "\n".join(parts)
