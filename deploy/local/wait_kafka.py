"""Wait until Kafka answers a real admin client.

An open port is not readiness: a KRaft broker listens before it has caught up
with its metadata log. This asks for the cluster description (a metadata
round trip) with aiokafka, the client the services use, and succeeds only when
it names at least `--brokers` brokers (default 1).

    python deploy/local/wait_kafka.py [--bootstrap HOST:PORT[,...]] [--brokers N] [--each]
                                      [--timeout S] [--pid PID]...

With --each, every address of the bootstrap list must answer by itself (an
admin client bootstrapped from it alone): after a node of a cluster restarts,
the others still list its previous incarnation until its session expires, so
only the node's own answer says that it is back.

Exit 0 when ready; 1 with a message after the timeout, or as soon as one of
the processes given by --pid has died (no point waiting for a crashed broker).
A secured Kafka is asked with the KAFKA_SECURITY_PROTOCOL / KAFKA_SASL_* settings
of the environment (shared/kafka/security.py), as every client of ours.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from process_alive import pid_alive

from shared.kafka.security import KafkaSecurityError, security_options


async def _describe(bootstrap: str, request_timeout_ms: int) -> dict[str, Any]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=request_timeout_ms, **security_options()
    )
    try:
        await admin.start()
        cluster: dict[str, Any] = await admin.describe_cluster()
        return cluster
    finally:
        await admin.close()


async def _problem(bootstrap: str, brokers: int, timeout_s: float) -> str | None:
    """None when `bootstrap` answers and lists `brokers` brokers, else why not."""
    try:
        cluster = await asyncio.wait_for(
            _describe(bootstrap, request_timeout_ms=5000), timeout=timeout_s
        )
    except Exception as exc:  # any failure means "not yet": the caller retries
        text = str(exc)
        return text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"
    listed = len(cluster.get("brokers") or [])
    if listed < brokers:
        return f"{bootstrap} lists {listed} of {brokers} brokers"
    return None


async def wait_ready(
    bootstrap: str, limit_s: float, pids: list[int], brokers: int = 1, each: bool = False
) -> str | None:
    """Returns None when ready, else the reason it is not."""
    deadline = time.monotonic() + limit_s
    pending = bootstrap.split(",") if each else [bootstrap]
    last_error = "no answer yet"
    while True:
        dead = [pid for pid in pids if not pid_alive(pid)]
        if dead:
            return f"the broker process (pid {dead[0]}) has exited"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return (
                f"Kafka at {bootstrap} was not ready within {limit_s:g}s (last error: {last_error})"
            )
        problem = await _problem(pending[0], brokers, min(remaining, 10))
        if problem is None:
            pending.pop(0)
            if not pending:
                return None
            continue
        last_error = problem
        await asyncio.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    )
    parser.add_argument("--brokers", type=int, default=1, help="brokers the cluster must list")
    parser.add_argument(
        "--each", action="store_true", help="every bootstrap address must answer by itself"
    )
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--pid", type=int, action="append", default=[])
    args = parser.parse_args()
    try:
        security_options()  # unusable settings never become usable: say so at once
    except KafkaSecurityError as exc:
        print(f"[wait_kafka] ERROR: {exc}", file=sys.stderr)
        return 1
    # aiokafka logs every refused connection at ERROR: expected while waiting.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    started = time.monotonic()
    problem = asyncio.run(
        wait_ready(args.bootstrap, args.timeout, args.pid, args.brokers, args.each)
    )
    if problem is not None:
        print(f"[wait_kafka] ERROR: Kafka is not ready: {problem}", file=sys.stderr)
        return 1
    print(
        f"[wait_kafka] Kafka ready at {args.bootstrap} ({time.monotonic() - started:.1f}s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
