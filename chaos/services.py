"""The three services as processes of the run: started, killed (-9), paused
(SIGSTOP), resumed and stopped by it, each logging to .local/chaos/logs/NAME.log."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from chaos.stack import HTTP_PORTS, ROOT

NAMES = ("inbound", "consent", "dispatcher")


class Service:
    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = HTTP_PORTS[name]
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        # Set while the run itself keeps the service down (killed, paused): the
        # watchdog then does not count it as an exit of its own.
        self.held_down = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.name}"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.held_down = False

    def _signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signum)

    def kill9(self) -> None:
        self.held_down = True
        self._signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def pause(self) -> None:
        self.held_down = True
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)
        self.held_down = False

    def exited(self) -> int | None:
        """The exit status when the process ended by itself, else None."""
        if self.held_down or self.process is None:
            return None
        return self.process.poll()

    def stop(self) -> None:
        """SIGCONT first: a paused process keeps a SIGTERM pending for ever."""
        if self.process is None or self.process.poll() is not None:
            return
        self.held_down = True
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    async def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    return False
                try:
                    if (await http.get(f"{self.url}/readyz")).status_code == 200:
                        return True
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        return False

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class Services:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.by_name = {name: Service(name, env, log_dir) for name in NAMES}

    def __getitem__(self, name: str) -> Service:
        return self.by_name[name]

    async def start(self, timeout: float = 120) -> None:
        for service in self.by_name.values():
            service.start()
        for service in self.by_name.values():
            if not await service.wait_ready(timeout):
                raise RuntimeError(
                    f"{service.name} not ready in {timeout:.0f}s:\n{service.log_tail(30)}"
                )

    def stop(self) -> None:
        for service in self.by_name.values():
            service.stop()

    async def watch(self, exits: list[str], started_at: float) -> None:
        """A supervisor's part: a service that exited by itself is noted and
        restarted, as systemd or Kubernetes would."""
        while True:
            await asyncio.sleep(1)
            for service in self.by_name.values():
                status = service.exited()
                if status is not None:
                    exits.append(
                        f"{service.name} exited {status} at {time.time() - started_at:.1f}s "
                        f"into the run; its last log lines:\n{service.log_tail()}"
                    )
                    service.start()
