"""Producing a benchmark's input fast, and watching its output arrive."""

import asyncio
import time
from collections.abc import Callable, Iterable
from types import TracebackType

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.kafka.clients import assign_from_end
from shared.kafka.security import security_options
from tests.support.signing import signed_headers

Record = tuple[bytes | None, bytes]  # key, value: serialised before the clock starts


def bulk_producer(bootstrap: str) -> AIOKafkaProducer:
    """acks=all and idempotent like the services' producers, with larger batches:
    filling a topic is setup, not the figure."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
        request_timeout_ms=60_000,
        **security_options(),
    )


async def produce_bulk(bootstrap: str, topic: str, records: Iterable[Record]) -> float:
    """Every record acknowledged; returns the seconds it took."""
    producer = bulk_producer(bootstrap)
    await producer.start()
    started = time.perf_counter()
    try:
        pending: list[asyncio.Future[object]] = []
        for key, value in records:
            # Events that claim WhatsApp are signed, as inbound writes them.
            headers = signed_headers(value)
            pending.append(await producer.send(topic, value=value, key=key, headers=headers))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return time.perf_counter() - started
    finally:
        await producer.stop()


class Arrivals:
    """Reads a topic from the end offsets taken at start (read_committed, as a
    consumer of our outputs reads) and notes when records arrive. With `ids`, per
    `request_id` header: when the record arrived and when it was created (its
    CreateTime, set by its producer's send()), both as epoch seconds."""

    def __init__(self, bootstrap: str, topic: str, *, ids: bool = False) -> None:
        self.topic = topic
        self.ids = ids
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **security_options(),
        )
        self.count = 0
        self.first_at = 0.0
        self.first_batch = 0
        self.last_at = 0.0
        self.arrived: dict[str, float] = {}
        self.created: dict[str, float] = {}
        self.values: list[bytes] = []
        self.keep_values = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "Arrivals":
        await self.consumer.start()
        await assign_from_end(self.consumer, self.topic)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()

    async def _read(self) -> None:
        while True:
            fetched = await self.consumer.getmany(timeout_ms=100, max_records=20_000)
            now = time.perf_counter()
            n = sum(len(records) for records in fetched.values())
            if not n:
                continue
            if not self.count:
                self.first_at, self.first_batch = now, n
            self.count += n
            self.last_at = now
            wall = time.time()
            for records in fetched.values():
                for record in records:
                    if self.ids:
                        for key, value in record.headers or ():
                            if key == "request_id":
                                self.arrived[value.decode()] = wall
                                self.created[value.decode()] = record.timestamp / 1000
                    if self.keep_values:
                        self.values.append(record.value)

    async def wait_for(
        self, count: int, timeout: float, alive: Callable[[], None] | None = None
    ) -> None:
        """Until `count` records arrived; `alive` raises if the producer of them died."""
        deadline = time.monotonic() + timeout
        while self.count < count:
            if self._task is not None and self._task.done():
                self._task.result()
            if alive is not None:
                alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.count} of {count} records on {self.topic} in {timeout}s")
            await asyncio.sleep(0.05)

    def throughput(self) -> float:
        """Records per second from the first arrival to the last; the first poll's
        records are not counted (the clock starts when they arrive)."""
        elapsed = self.last_at - self.first_at
        return (self.count - self.first_batch) / elapsed if elapsed > 0 else float("nan")
