"""The machine a figure was measured on, and the memory a process holds."""

import asyncio
import os
import time
from pathlib import Path
from types import TracebackType


def describe_machine() -> str:
    cpus = len(os.sched_getaffinity(0))  # what nproc prints
    model = _cpu_model()
    memory_gib = _meminfo_kib("MemTotal") / 1024 / 1024
    one, five, _ = os.getloadavg()
    return (
        f"nproc {cpus}{f' ({model})' if model else ''}, {memory_gib:.1f} GiB memory, "
        f"load average {one:.2f} (1 min) {five:.2f} (5 min) now"
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _meminfo_kib(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


def rss_bytes(pid: int) -> int | None:
    """VmRSS of a live process; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class RssSampler:
    """Samples a process's VmRSS while the `async with` block runs; `peak` is the max."""

    def __init__(self, pid: int, every_seconds: float = 0.2) -> None:
        self.pid = pid
        self.every_seconds = every_seconds
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes(self.pid) or 0)
            await asyncio.sleep(self.every_seconds)

    async def __aenter__(self) -> "RssSampler":
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.peak = max(self.peak, rss_bytes(self.pid) or 0)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def peak_mib(self) -> float:
        return self.peak / 1024 / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuShare:
    """The share of one core a process used while the `with` block ran (1.0 = a core)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.share = 0.0

    async def __aenter__(self) -> "CpuShare":
        self._cpu = cpu_seconds(self.pid)
        self._wall = time.perf_counter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        wall = time.perf_counter() - self._wall
        self.share = (cpu_seconds(self.pid) - self._cpu) / wall if wall > 0 else 0.0
