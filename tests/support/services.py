"""The three services as real processes, as `make up` runs them."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shared.db.roles import without_role_urls
from tests.support.db_roles import local_role_urls
from tests.support.signing import SIGNING_ENV
from tests.support.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
PORTS = {"inbound": 8081, "consent": 8082, "dispatcher": 8083}


class ServiceProcess:
    def __init__(
        self,
        name: str,
        stack: Stack,
        log_dir: Path,
        extra_env: dict[str, str],
        port: int | None = None,
    ) -> None:
        """`port`: another public port than the suite's (its admin port 1000 above it),
        for a second system beside the suite's."""
        self.name = name
        self.port = port or PORTS[name]
        if port is not None:
            prefix = name.upper()
            extra_env = {
                f"{prefix}_HTTP_PORT": str(port),
                f"{prefix}_ADMIN_PORT": str(port + 1000),
                **extra_env,
            }
        # Each service as its own role on the database it is given (docs/security.md):
        # the suite proves the roles suffice; DATABASE_URL stays the owner's fallback.
        database = extra_env.get("DATABASE_URL", stack.database_url)
        self.env = {
            **without_role_urls(os.environ),
            "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
            "DATABASE_URL": stack.database_url,
            **local_role_urls(database),
            "LOG_FORMAT": "json",
            **SIGNING_ENV,
            **extra_env,
        }
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready in {timeout}s: {self.log_tail()}")

    def stop(self, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
