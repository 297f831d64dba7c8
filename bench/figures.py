"""What a benchmark prints: its sizes, the machine, its figures one per line; and
the JSON summary that `python -m bench` gathers into one table."""

import argparse
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from bench.machine import describe_machine

QUICK_DIVISOR = 20


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    at_least: float | None = None  # the goal, when the issue sets one

    @property
    def met(self) -> bool | None:
        return None if self.at_least is None else self.value >= self.at_least

    def line(self) -> str:
        text = f"  {self.name}: {format_value(self.value, self.unit)}"
        if self.at_least is not None:
            text += f"  (goal >= {self.at_least:g}: {'met' if self.met else 'NOT met'})"
        return text


@dataclass
class Report:
    benchmark: str
    sizes: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def header(self) -> None:
        print(f"== {self.benchmark}: {self.sizes}", flush=True)
        print(f"   machine: {describe_machine()}", flush=True)

    def figure(self, name: str, value: float, unit: str, at_least: float | None = None) -> None:
        added = Figure(name, value, unit, at_least)
        self.figures.append(added)
        print(added.line(), flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"   {text}", flush=True)

    def write(self, path: Path | None) -> None:
        if path is None:
            return
        body = {
            "benchmark": self.benchmark,
            "sizes": self.sizes,
            "figures": [asdict(f) | {"met": f.met} for f in self.figures],
            "notes": self.notes,
        }
        path.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))


def format_value(value: float, unit: str) -> str:
    if math.isnan(value):
        return f"n/a {unit}"
    if unit in ("ratio", "×"):
        return f"{value:.3f}" if unit == "ratio" else f"{value:.1f}×"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.2f} {unit}"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): a value that was observed."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def micros_per_call(action: Callable[[], object], n: int) -> float:
    """The mean time of `action` over n calls, in microseconds."""
    started = time.perf_counter()
    for _ in range(n):
        action()
    return (time.perf_counter() - started) / n * 1e6


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def spread(values: Sequence[float]) -> str:
    """The runs behind a median, for the reader to judge the noise."""
    return ", ".join(f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3f}" for v in values)


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help=f"every size / {QUICK_DIVISOR}: a smoke run"
    )
    parser.add_argument("--summary", type=Path, help="write the figures as JSON here")
    return parser


def sized(given: int | None, full: int, quick: bool, minimum: int = 1) -> int:
    """An explicit size wins; otherwise the full size, or a twentieth of it with --quick."""
    if given is not None:
        return given
    return max(minimum, full // QUICK_DIVISOR) if quick else full
