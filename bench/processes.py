"""A process a benchmark starts, watches (readiness, RSS, /metrics) and always stops."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import httpx

from bench.machine import rss_bytes
from shared.db.roles import without_role_urls
from tests.support.signing import SIGNING_ENV

ROOT = Path(__file__).resolve().parents[1]


class BenchProcess:
    def __init__(
        self, name: str, module_args: list[str], env: dict[str, str], log_dir: Path
    ) -> None:
        self.name = name
        self.args = [sys.executable, "-m", *module_args]
        # A benchmark's DATABASE_URL is its private database: a role URL of the
        # caller's, which would win over it, must not follow.
        self.env = {**without_role_urls(os.environ), "LOG_FORMAT": "json", **SIGNING_ENV, **env}
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> "BenchProcess":
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def alive(self) -> None:
        """Raises with the log's tail if the process has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.process.returncode}): {self.tail()}")

    async def wait_ready(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                self.alive()
                try:
                    if (await http.get(f"{url}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready in {timeout}s: {self.tail()}")

    def rss(self) -> int | None:
        return rss_bytes(self.pid) if self.process is not None else None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


async def scrape(url: str) -> dict[str, float]:
    """The Prometheus text of /metrics as {sample with labels: value}."""
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"{url}/metrics")).text
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                samples[name] = float(value)
            except ValueError:
                continue
    return samples


def histogram_quantile(samples: dict[str, float], metric: str, q: float) -> float:
    """The upper bound of the bucket holding quantile q (what Prometheus would bound it by)."""
    buckets = sorted(
        (float(name.split('le="')[1].split('"')[0]), count)
        for name, count in samples.items()
        if name.startswith(f"{metric}_bucket{{")
    )
    total = samples.get(f"{metric}_count", 0.0)
    if not total:
        return float("nan")
    for bound, count in buckets:
        if count >= q * total:
            return bound
    return float("inf")


@contextmanager
def py_spy(pid: int, out: Path) -> Iterator[None]:
    """With BENCH_PYSPY=/path/to/py-spy set, a sampling profile of `pid` while the
    block runs, as collapsed stacks (`python -m bench.profile_summary FILE` reads
    them). Off by default: py-spy takes CPU the figures would otherwise get."""
    binary = os.environ.get("BENCH_PYSPY")
    if not binary:
        yield
        return
    spy = subprocess.Popen(
        [binary, "record", "-p", str(pid), "-o", str(out), "-f", "raw", "-r", "100"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
        print(f"   profile of pid {pid}: {out}", flush=True)
