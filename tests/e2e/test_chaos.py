"""The fault-injection run, as `make chaos` runs it, for three minutes (one fault
of each kind): on a stack of
its own (3 Kafka brokers on 19192/29192/31192, PostgreSQL on 55433, the services on
18081-18083), so it neither needs nor disturbs the stack the other tests use."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.checks import INVARIANTS
from chaos.faults import KINDS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]


def test_three_minutes_of_faults_keep_every_invariant() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "chaos", "--minutes", "3", "--seed", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1400,
        check=False,
    )

    output = run.stdout[-12_000:] + "\n" + run.stderr[-4_000:]
    assert run.returncode == 0, output
    rows = {
        cells[0]: cells[1]
        for line in run.stdout.splitlines()
        if len(cells := [c.strip() for c in line.split("|")]) >= 3
    }
    for name in INVARIANTS:
        assert rows.get(name) == "held", f"{name}: {rows.get(name)!r}\n{output}"
    assert re.search(r"^every invariant held$", run.stdout, re.MULTILINE), output
    injected = {
        cells[1]
        for line in run.stdout.splitlines()
        if len(cells := [c.strip() for c in line.split("|")]) >= 6 and cells[0].isdigit()
    }
    assert injected >= set(KINDS), f"faults injected: {sorted(injected)}\n{output}"
