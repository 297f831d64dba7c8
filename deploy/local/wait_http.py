"""Wait until HTTP readiness endpoints answer 200.

    python deploy/local/wait_http.py [--timeout S] NAME,URL[,PID] ...

Polls every URL until it answers 200. A target whose process (given by PID)
exits is given up at once: a crashed service will not become ready. Exit 0
when all are ready; otherwise exit 1 and print the names of the targets that
are not ready on stdout, one per line (the caller shows their logs), with the
reasons on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from process_alive import pid_alive


@dataclass
class Target:
    name: str
    url: str
    pid: int | None
    problem: str = "no answer yet"
    ready: bool = False
    dead: bool = False


def _parse(spec: str) -> Target:
    parts = spec.split(",")
    if len(parts) not in (2, 3) or not all(parts):
        raise SystemExit(f"bad target {spec!r}: expected NAME,URL[,PID]")
    return Target(parts[0], parts[1], int(parts[2]) if len(parts) == 3 else None)


def _check(target: Target) -> None:
    try:
        with urllib.request.urlopen(target.url, timeout=2) as response:
            target.ready = response.status == 200
            target.problem = f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        target.problem = f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        target.problem = f"{type(exc).__name__}: {exc}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("targets", nargs="+")
    args = parser.parse_args()
    targets = [_parse(spec) for spec in args.targets]
    deadline = time.monotonic() + args.timeout
    while True:
        pending = [t for t in targets if not t.ready and not t.dead]
        for t in pending:
            if t.pid is not None and not pid_alive(t.pid):
                t.dead = True
                t.problem = f"its process (pid {t.pid}) exited"
                continue
            _check(t)
        pending = [t for t in targets if not t.ready and not t.dead]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    failed = [t for t in targets if not t.ready]
    for t in failed:
        print(f"[wait_http] {t.name} is not ready ({t.url}): {t.problem}", file=sys.stderr)
        print(t.name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
