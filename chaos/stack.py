"""The run's own stack, so that its faults never hit anyone else's: 3 Kafka brokers
and a PostgreSQL under .local/chaos/, started and stopped through the project's
scripts (deploy/local/kafka.sh, postgres.sh) with the env that points them there."""

import asyncio
import base64
import json
import os
import secrets
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from chaos.observed import CommandResult
from shared.consent.authenticity import SigningKey
from shared.db.roles import without_role_urls
from shared.kafka.security import security_options

ROOT = Path(__file__).resolve().parents[1]
CHAOS_DIR = ROOT / ".local" / "chaos"
KAFKA_HOME = CHAOS_DIR / "kafka"
PG_HOME = CHAOS_DIR / "pg"
LOG_DIR = CHAOS_DIR / "logs"
# Each controller on its broker port + 1. The brokers, which the fault run restarts
# again and again, keep below 32768, where Linux picks the local ports of outgoing
# connections: one took 39192 once, and the restarted broker could not bind it.
KAFKA_PORTS = (19192, 29192, 31192)
PG_PORT = 55433
HTTP_PORTS = {"inbound": 18081, "consent": 18082, "dispatcher": 18083}

# What the caller's environment may hold that would point a script or a service at
# another stack (the default one, or a test's). The run's brokers are PLAINTEXT
# whatever KAFKA_SECURED says: its faults are about availability, not access.
_FOREIGN = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "DATABASE_URL",
    "KAFKA_HOME_DIR",
    "PG_HOME_DIR",
    "KAFKA_SECURED",
    "KAFKA_USERS_FILE",
)


class StackError(RuntimeError):
    """A script or command of the stack failed; the message holds its output."""


def _base_env() -> dict[str, str]:
    # The run's services connect as its DATABASE_URL's owner: a role URL of the
    # caller's would point them at the usual database.
    return {k: v for k, v in without_role_urls(os.environ).items() if k not in _FOREIGN}


@dataclass(frozen=True)
class Ran:
    command: str
    exit_code: int
    stdout: str
    tail: str  # the last lines of stdout and stderr

    def result(self) -> CommandResult:
        return CommandResult(self.command, self.exit_code, self.tail)


async def run_command(argv: list[str], env: dict[str, str], log_path: Path, timeout: float) -> Ran:
    """Runs to completion (killed after `timeout`), its output appended to `log_path`."""
    started = time.time()
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
        code = process.returncode if process.returncode is not None else -1
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
        code = -9
        err += f"\n[chaos] killed after {timeout:.0f}s".encode()
    text_out, text_err = out.decode(errors="replace"), err.decode(errors="replace")
    with log_path.open("a") as log:
        log.write(f"\n$ {' '.join(argv)}  (exit {code}, {time.time() - started:.1f}s)\n")
        log.write(text_out + text_err)
    combined = (text_out + text_err).strip().splitlines()
    return Ran(" ".join(argv), code, text_out, "\n".join(combined[-40:]))


class ChaosStack:
    def __init__(self, app_secret: str, log_dir: Path = LOG_DIR) -> None:
        self.app_secret = app_secret
        # Keys of the run's own, as `make up` generates local ones.
        self.inbound_key = SigningKey.generate("chaos-inbound")
        self.dispatcher_key = SigningKey.generate("chaos-dispatcher")
        self.pseudonym_key = base64.b64encode(secrets.token_bytes(32)).decode()
        self.erasure_index_key = base64.b64encode(secrets.token_bytes(32)).decode()
        self.erasure_master_key = base64.b64encode(secrets.token_bytes(32)).decode()
        self.log_dir = log_dir
        self.bootstrap = ""
        self.database_url = ""

    # ------------------------------------------------------------ environment

    def kafka_env(self) -> dict[str, str]:
        return {
            **_base_env(),
            "KAFKA_HOME_DIR": str(KAFKA_HOME),
            "KAFKA_BROKERS": str(len(KAFKA_PORTS)),
            "KAFKA_PORTS": " ".join(map(str, KAFKA_PORTS)),
        }

    def pg_env(self) -> dict[str, str]:
        return {**_base_env(), "PG_HOME_DIR": str(PG_HOME), "PG_PORT": str(PG_PORT)}

    def env(self) -> dict[str, str]:
        """For the services and for every command run against the stack."""
        return {
            **_base_env(),
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "DATABASE_URL": self.database_url,
            "KAFKA_REPLICATION_FACTOR": str(len(KAFKA_PORTS)),
            "LOG_FORMAT": "json",
            "WHATSAPP_APP_SECRET": self.app_secret,
            "WHATSAPP_VERIFY_TOKEN": f"chaos-verify-{self.app_secret}",
            "INBOUND_SIGNING_KEY": self.inbound_key.setting(),
            "DISPATCHER_SIGNING_KEY": self.dispatcher_key.setting(),
            "EVENT_VERIFY_KEYS": ",".join(
                k.public_setting() for k in (self.inbound_key, self.dispatcher_key)
            ),
            "PSEUDONYM_KEY": self.pseudonym_key,
            "ERASURE_INDEX_KEY": self.erasure_index_key,
            "ERASURE_MASTER_KEYS": json.dumps({"chaos-1": self.erasure_master_key}),
            "ERASURE_ACTIVE_KEY": "chaos-1",
            "INBOUND_HTTP_PORT": str(HTTP_PORTS["inbound"]),
            "CONSENT_HTTP_PORT": str(HTTP_PORTS["consent"]),
            "DISPATCHER_HTTP_PORT": str(HTTP_PORTS["dispatcher"]),
            # Clause 6.1's default (20 a day) would drop most of a long run's sends as
            # frequency_capped; dispatches are what the opt-out invariant is about.
            "DISPATCHER_FREQUENCY_LIMIT": "100000",
            # Quiet hours would defer reminders at night and leave the run's
            # decisions to whatever hour it starts at: the whole day is open.
            "DISPATCHER_QUIET_HOURS": '{"default": "00:00-00:00"}',
        }

    # ------------------------------------------------------------ scripts

    async def _script(self, script: str, *args: str, timeout: float = 180) -> str:
        env = self.kafka_env() if script == "kafka" else self.pg_env()
        result = await run_command(
            ["bash", str(ROOT / "deploy" / "local" / f"{script}.sh"), *args],
            env,
            self.log_dir / "stack.log",
            timeout,
        )
        if result.exit_code != 0:
            raise StackError(
                f"{script}.sh {' '.join(args)} exited {result.exit_code}:\n{result.tail}"
            )
        return result.stdout

    async def kafka(self, *args: str, timeout: float = 180) -> str:
        return await self._script("kafka", *args, timeout=timeout)

    async def postgres(self, *args: str, timeout: float = 120) -> str:
        return await self._script("postgres", *args, timeout=timeout)

    async def start(self) -> None:
        """A fresh stack: the previous run's data is removed, so every run starts
        from an empty log and an empty database (and its audit judges it alone)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        await self.stop()
        _wipe(KAFKA_HOME, keep_prefix="libs")
        _wipe(PG_HOME)
        await asyncio.gather(self.kafka("start", timeout=300), self.postgres("start"))
        self.bootstrap = _last_line(await self.kafka("bootstrap"))
        self.database_url = _last_line(await self.postgres("url"))
        for module in ("shared.db.migrate", "shared.kafka.provision"):
            result = await self.python(module, log_name=module.rsplit(".", 1)[-1], timeout=180)
            if result.exit_code != 0:
                raise StackError(f"{module} exited {result.exit_code}:\n{result.tail}")

    async def stop(self) -> None:
        """Both attempted whatever the other did."""
        outcomes = await asyncio.gather(
            self.kafka("stop"), self.postgres("stop"), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                print(f"[chaos] stopping the stack: {outcome}", file=sys.stderr, flush=True)

    async def python(self, *args: str, log_name: str, timeout: float) -> Ran:
        """`python -m ARGS` from the repository root with the stack's env."""
        return await run_command(
            [sys.executable, "-m", *args], self.env(), self.log_dir / f"{log_name}.log", timeout
        )

    # ------------------------------------------------------------ faults

    async def consent_events_leader(self, topic: str, partition: int) -> int:
        """The node number (1-3, as kafka.sh counts them) leading the partition."""
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, request_timeout_ms=10_000, **security_options()
        )
        await admin.start()
        try:
            cluster = await admin.describe_cluster()
            (described,) = await admin.describe_topics([topic])
        finally:
            await admin.close()
        ports = {b["node_id"]: b["port"] for b in cluster["brokers"]}
        leader = next(p["leader"] for p in described["partitions"] if p["partition"] == partition)
        if leader not in ports:
            raise StackError(f"{topic}:{partition} has no live leader (leader {leader})")
        return KAFKA_PORTS.index(ports[leader]) + 1


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise StackError("the script printed nothing")
    return lines[-1]


def _wipe(directory: Path, keep_prefix: str | None = None) -> None:
    if not directory.exists():
        return
    for child in directory.iterdir():
        if keep_prefix and child.name.startswith(keep_prefix):
            continue  # the broker's jars: fetched once, not data
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
