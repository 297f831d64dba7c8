"""Wait until a Kafka broker answers a real admin client.

An open port is not readiness: a KRaft broker listens before it has caught up
with its metadata log. This asks for the cluster description (a metadata
round trip) with aiokafka, the client the services use, and succeeds only when
it names at least one broker.

    python deploy/local/wait_kafka.py [--bootstrap HOST:PORT] [--timeout S] [--pid PID]

Exit 0 when ready; 1 with a message after the timeout, or as soon as the
process given by --pid has died (no point waiting for a crashed broker).
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


async def _describe(bootstrap: str, request_timeout_ms: int) -> dict[str, Any]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=request_timeout_ms)
    try:
        await admin.start()
        cluster: dict[str, Any] = await admin.describe_cluster()
        return cluster
    finally:
        await admin.close()


async def wait_ready(bootstrap: str, limit_s: float, pid: int | None) -> str | None:
    """Returns None when ready, else the reason it is not."""
    deadline = time.monotonic() + limit_s
    last_error = "no answer yet"
    while True:
        if pid is not None and not pid_alive(pid):
            return f"the broker process (pid {pid}) has exited"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return (
                f"no broker answered at {bootstrap} within {limit_s:g}s (last error: {last_error})"
            )
        try:
            cluster = await asyncio.wait_for(
                _describe(bootstrap, request_timeout_ms=5000), timeout=min(remaining, 10)
            )
        except Exception as exc:  # any failure means "not yet": retry until the deadline
            text = str(exc)
            last_error = (
                text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"
            )
        else:
            brokers = cluster.get("brokers") or []
            if brokers:
                return None
            last_error = "the cluster description lists no broker yet"
        await asyncio.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    )
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--pid", type=int, default=None)
    args = parser.parse_args()
    # aiokafka logs every refused connection at ERROR: expected while waiting.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    started = time.monotonic()
    problem = asyncio.run(wait_ready(args.bootstrap, args.timeout, args.pid))
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
