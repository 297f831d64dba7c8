"""A secured Kafka of a test's own, as `KAFKA_SECURED=1 make infra-up` runs one:
deploy/local/kafka.sh with SASL/SCRAM-SHA-512 and ACLs, its topics provisioned and
the access matrix applied as `admin`, on free ports, in a directory of its own
under .local/ (left for post-mortems, wiped by the next start), never the shared
broker's. A PostgreSQL of its own too (deploy/local/postgres.sh on a free port)
when no database is given or running."""

import os
import random
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from shared.kafka.security import KafkaSecurity

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "deploy" / "local"
LIBS = ROOT / ".local" / "kafka" / "libs"


def missing_prerequisite() -> str | None:
    if shutil.which("java") is None:
        return "java not found: the broker needs a JRE 17+"
    if not (ROOT / ".venv" / "bin" / "python").exists():
        return "no .venv: kafka.sh waits for the broker with the project's aiokafka (make venv)"
    stamp = LIBS.parent / "libs.sha256"
    pom = sha256((ROOT / "deploy" / "kafka" / "pom.xml").read_bytes()).hexdigest()
    if not any(LIBS.glob("kafka_2.13-*.jar")) or not stamp.exists():
        return f"no Kafka jars in {LIBS}: `make deps` fetches them"
    if stamp.read_text().strip() != pom:
        return f"the jars in {LIBS} are not those of deploy/kafka/pom.xml: `make deps`"
    return None


def free_port(low: int, high: int, pair: bool = False) -> int:
    """A port (with the next one, for a broker's controller) below the kernel's
    ephemeral range, so no outgoing connection takes it meanwhile."""
    while True:
        port = random.randrange(low, high, 2)
        if all(_free(p) for p in (port, port + 1)[: 2 if pair else 1]):
            return port


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run_script(script: str, *args: str, env: dict[str, str], timeout: float = 180) -> str:
    done = subprocess.run(
        ["bash", str(LOCAL / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done.stdout.strip()


@dataclass
class SecuredKafka:
    home: Path
    port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def users_file(self) -> Path:
        return self.home / "kafka-users.env"

    def script(self, *args: str) -> str:
        # Whatever the caller's environment points at, the script acts on this instance.
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
        env |= {
            "KAFKA_SECURED": "1",
            "KAFKA_HOME_DIR": str(self.home / "kafka"),
            "KAFKA_PORTS": str(self.port),
            "KAFKA_USERS_FILE": str(self.users_file),
            "KAFKA_STOP_TIMEOUT": "15",
        }
        return run_script("kafka.sh", *args, env=env)

    def password(self, principal: str) -> str:
        wanted = f"KAFKA_PASSWORD_{principal.upper()}="
        for line in self.users_file.read_text().splitlines():
            if line.startswith(wanted):
                return line.removeprefix(wanted)
        raise LookupError(f"no password for {principal} in {self.users_file}")

    def client_env(self, principal: str) -> dict[str, str]:
        """What a process connecting as `principal` is given (lib.sh's use_kafka_principal)."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": principal,
            "KAFKA_SASL_PASSWORD": self.password(principal),
        }

    def options(self, principal: str, password: str | None = None) -> dict[str, Any]:
        """An aiokafka client's keyword arguments as `principal`."""
        return KafkaSecurity(
            security_protocol="SASL_PLAINTEXT",
            sasl_username=principal,
            sasl_password=SecretStr(password or self.password(principal)),
        ).client_options()

    def run_module(self, module: str, principal: str) -> None:
        """`python -m module` as `principal`, as the Makefile runs provisioning."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
        done = subprocess.run(
            [sys.executable, "-m", module],
            cwd=ROOT,
            env=env | self.client_env(principal),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{module} as {principal} exited {done.returncode}:\n{done.stderr}")

    def log(self) -> str:
        return (self.home / "kafka" / "kafka.log").read_text(errors="replace")

    def start(self) -> None:
        """A fresh instance: whatever an interrupted run left is stopped and wiped."""
        self.script("stop")
        shutil.rmtree(self.home / "kafka", ignore_errors=True)
        self.users_file.unlink(missing_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self.script("start")
        self.run_module("shared.kafka.provision", "admin")
        self.run_module("shared.kafka.acls", "admin")


@dataclass
class OwnPostgres:
    """deploy/local/postgres.sh's cluster in a directory and on a port of its own."""

    home: Path
    port: int

    def script(self, *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PG_HOME_DIR")}
        env |= {"PG_HOME_DIR": str(self.home), "PG_PORT": str(self.port)}
        return run_script("postgres.sh", *args, env=env)

    def start(self) -> str:
        """A fresh cluster: whatever an interrupted run left is stopped and wiped."""
        self.script("stop")
        shutil.rmtree(self.home, ignore_errors=True)
        self.script("start")
        return self.script("url").splitlines()[-1]

    def stop(self) -> None:
        self.script("stop")
