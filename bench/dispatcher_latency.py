"""Decision latency at a paced load (half the measured peak): requests sent at a
steady rate to a fresh dispatcher, each timed from its acknowledgement (and from its
send) to its decision read."""

import asyncio
import time
from dataclasses import dataclass

from bench.dispatcher_setup import forget_decisions, request_records
from bench.dispatcher_sides import Bench, dispatcher_process, retried_produces
from bench.kafka_io import Arrivals
from bench.machine import CpuShare, RssSampler
from bench.private import free_port, position_group, topic_ends
from bench.processes import py_spy, scrape
from shared.kafka.clients import durable_producer


@dataclass
class Latency:
    rate: float
    achieved: float
    measured: int
    from_ack: list[float]
    from_send: list[float]
    to_created: list[float]  # ack -> the dispatcher's send() of the decision
    created_to_read: list[float]  # that send -> the decision readable and read
    rss_mib: float
    cpu: float
    retries: int
    seconds: float  # first send to the last decision read
    metrics: dict[str, float]


async def paced_produce(
    bootstrap: str, topic: str, records: list[tuple[str, bytes | None, bytes]], rate: float
) -> tuple[dict[str, float], dict[str, float], float]:
    """Sends at `rate` per second on a 5 ms tick; notes each request's send and ack
    time (epoch seconds, the clock of the records' timestamps)."""
    producer = durable_producer(bootstrap)
    await producer.start()
    sent: dict[str, float] = {}
    acked: dict[str, float] = {}
    try:
        futures = []
        started = time.perf_counter()
        i = 0
        while i < len(records):
            due = min(len(records), int((time.perf_counter() - started) * rate) + 1)
            for request_id, key, value in records[i:due]:
                sent[request_id] = time.time()
                future = await producer.send(topic, value=value, key=key)
                future.add_done_callback(lambda _, r=request_id: acked.__setitem__(r, time.time()))
                futures.append(future)
            i = due
            await asyncio.sleep(0.005)
        await asyncio.gather(*futures)
        return sent, acked, len(records) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def latency_run(
    b: Bench, recipients: list[str], rate: float, seconds: float, warmup: float
) -> Latency:
    await forget_decisions(b.database_url)
    group = b.group("latency")
    await position_group(
        b.bootstrap, group, b.topics.requests, await topic_ends(b.bootstrap, b.topics.requests)
    )
    total = max(1, int(rate * seconds))
    prefix = f"lat-{b.rid}"
    records = [
        (f"{prefix}-{i}", key, value)
        for i, (key, value) in enumerate(request_records(recipients, total, prefix, seed=11))
    ]
    port = free_port()
    async with Arrivals(b.bootstrap, b.topics.decisions, ids=True) as decisions:
        with dispatcher_process(b, "dispatcher-latency", group, port) as process:
            await process.wait_ready(f"http://127.0.0.1:{port}")
            profile = b.log_dir / "dispatcher-latency.pyspy.txt"
            with py_spy(process.pid, profile):
                async with RssSampler(process.pid) as rss, CpuShare(process.pid) as cpu:
                    started = time.perf_counter()
                    sent, acked, achieved = await paced_produce(
                        b.bootstrap, b.topics.requests, records, rate
                    )
                    await decisions.wait_for(total, timeout=120, alive=process.alive)
                    seconds = time.perf_counter() - started
            metrics = await scrape(f"http://127.0.0.1:{port}")
    skip = int(rate * warmup)
    kept = [r for r, _, _ in records[skip:]]
    return Latency(
        rate=rate,
        achieved=achieved,
        measured=len(kept),
        from_ack=[decisions.arrived[r] - acked[r] for r in kept],
        from_send=[decisions.arrived[r] - sent[r] for r in kept],
        to_created=[decisions.created[r] - acked[r] for r in kept],
        created_to_read=[decisions.arrived[r] - decisions.created[r] for r in kept],
        rss_mib=rss.peak_mib,
        cpu=cpu.share,
        retries=retried_produces(process),
        seconds=seconds,
        metrics=metrics,
    )
