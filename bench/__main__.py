"""Every benchmark in sequence, then one table of their figures.

    python -m bench [--quick] [--only NAME ...]

Each benchmark runs as a process of its own (`python -m bench.bench_NAME`), so one
cannot inherit another's memory, event loop or leftovers; its own output streams
through as it runs. `--quick` divides every size by 20 (a smoke run, not figures
to quote). `bench.bench_audit`, when present, runs last as `python -m
bench.bench_audit` (with --quick when its source mentions that option); it prints
its own figures and shows in the table by its exit status.

The exit status is 0 when every benchmark ran; a goal not met is a figure, not a
failure (the table says which).
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bench.figures import format_value
from bench.machine import describe_machine
from bench.processes import ROOT

BENCHMARKS = (
    "dispatcher",
    "projection",
    "lookup",
    "inbound",
    "statuses",
    "audit",
    "signatures",
    "erasure_keys",
    "ledger",
    "retention",
)


def command(name: str, quick: bool, summary: Path) -> list[str] | None:
    module = ROOT / "bench" / f"bench_{name}.py"
    if not module.exists():
        return None
    args = [sys.executable, "-m", f"bench.bench_{name}"]
    if name == "audit":  # someone else's module: only the options it says it has
        return args + (["--quick"] if quick and "--quick" in module.read_text() else [])
    return args + (["--quick"] if quick else []) + ["--summary", str(summary)]


def table(rows: list[tuple[str, str, str, str]]) -> str:
    header = ("benchmark", "figure", "value", "goal")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def rows_of(
    name: str, summary: Path, status: int, seconds: float, sizes: list[str]
) -> list[tuple[str, str, str, str]]:
    if status != 0:
        return [(name, f"FAILED (exit {status}) after {seconds:.0f} s", "", "")]
    if not summary.exists():
        return [(name, f"ran in {seconds:.0f} s (exit 0)", "", "")]
    body = orjson.loads(summary.read_bytes())
    sizes.append(f"{name} ({seconds:.0f} s): {body['sizes']}")
    rows = []
    for figure in body["figures"]:
        goal = ""
        if figure["at_least"] is not None:
            goal = f">= {figure['at_least']:g}: {'met' if figure['met'] else 'NOT met'}"
        rows.append((name, figure["name"], format_value(figure["value"], figure["unit"]), goal))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every size / 20: a smoke run")
    parser.add_argument(
        "--only", action="append", choices=BENCHMARKS, metavar="NAME", help=", ".join(BENCHMARKS)
    )
    args = parser.parse_args()
    chosen = [name for name in BENCHMARKS if not args.only or name in args.only]
    rows: list[tuple[str, str, str, str]] = []
    sizes: list[str] = []
    failed = []
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        for name in chosen:
            summary = Path(scratch) / f"{name}.json"
            cmd = command(name, args.quick, summary)
            if cmd is None:
                print(f"== bench_{name}: not present, skipped", flush=True)
                continue
            started = time.monotonic()
            status = subprocess.run(cmd, cwd=ROOT, check=False).returncode
            seconds = time.monotonic() - started
            rows += rows_of(name, summary, status, seconds, sizes)
            if status != 0:
                failed.append(name)
            print(flush=True)
    print(f"== summary{' (--quick: smoke sizes)' if args.quick else ''}")
    print(f"   machine: {describe_machine()}")
    print(table(rows))
    for line in sizes:
        print(f"   {line}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
