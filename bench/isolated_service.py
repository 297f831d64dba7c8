"""Run a service's own `main()` on a benchmark's private copies of the topics.

    KAFKA_TOPIC_PREFIX=bench.1a2b3c4d. python -m bench.isolated_service dispatcher

The services read and write the contract's topic names, which other runs share:
a benchmark's 200,000 requests on `messages.requests.v1` would be decided by every
dispatcher running beside it (a test session's, `make up`'s), and the benchmark's
dispatcher would publish second decisions for their requests. So the benchmark
creates its topics as `<prefix><contract name>` (`bench.private.prefixed`) and
starts the service with KAFKA_TOPIC_PREFIX=<prefix>, which `shared.topics` puts
before every contract name; the process refuses to start without a prefix. The
service's code runs unchanged otherwise, but for the wrappers of the two options
below, when they are set.

`BENCH_STAGES=path` with `BENCH_STAGE_CLASSES=module:Class,...` times every
coroutine method of those classes (wall time, calls, max) and keeps the totals
there as JSON, rewritten at most every 0.2 s (uvicorn re-raises SIGTERM after its
shutdown, so nothing at exit can be relied on): where a batch's time goes, waits
included, which a sampling profile of CPU does not show.

`BENCH_RETRY_BACKOFF_MS=n` is an experiment, off by default: every producer made by
`shared.kafka.clients.durable_producer` waits n ms before retrying a produce, whatever
its caller asked for (the dispatcher asks for 10 ms): what the broker's
NOT_ENOUGH_REPLICAS answers to transactional produces cost (see
bench.dispatcher_sides.retried_produces).
"""

import importlib
import inspect
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

import shared.kafka.clients as clients
import shared.topics as topics


def shorten_retry_backoff(milliseconds: int) -> None:
    made = clients.durable_producer

    def durable_producer(*args: Any, **kwargs: Any) -> Any:
        producer = made(*args, **kwargs)
        # Overrides what the caller passed: aiokafka's sender reads this per request.
        producer._sender._retry_backoff = milliseconds / 1000
        return producer

    clients.durable_producer = durable_producer


def time_stages(path: str, classes: str) -> None:
    totals: dict[str, list[float]] = {}  # name -> [seconds, calls, max seconds]
    written = [0.0]

    def keep() -> None:
        if time.monotonic() - written[0] >= 0.2:
            Path(path).write_bytes(orjson.dumps(totals))
            written[0] = time.monotonic()

    def timed(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                total = totals.setdefault(name, [0.0, 0, 0.0])
                total[0] += elapsed
                total[1] += 1
                total[2] = max(total[2], elapsed)
                keep()

        return wrapper

    for spec in classes.split(","):
        module_name, class_name = spec.split(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        for name, method in list(vars(cls).items()):
            if inspect.iscoroutinefunction(method):
                setattr(cls, name, timed(f"{class_name}.{name}", method))


def main() -> None:
    service = sys.argv[1]
    if not topics.PREFIX:
        sys.exit("KAFKA_TOPIC_PREFIX is not set: the service would use the contract's topics")
    if os.environ.get("BENCH_RETRY_BACKOFF_MS"):
        shorten_retry_backoff(int(os.environ["BENCH_RETRY_BACKOFF_MS"]))
    entry = importlib.import_module(f"services.{service}.main")
    if os.environ.get("BENCH_STAGES"):
        time_stages(os.environ["BENCH_STAGES"], os.environ["BENCH_STAGE_CLASSES"])
    entry.main()


if __name__ == "__main__":
    main()
