"""Producing as another system would during a broker fault: a send that fails is
retried (the same record again) until Kafka acknowledges it; only what was
acknowledged counts as sent."""

import asyncio
import time
from dataclasses import dataclass

from aiokafka.errors import KafkaError

from chaos.history import History
from shared.kafka.clients import durable_producer


@dataclass(frozen=True)
class Acked:
    partition: int
    offset: int
    at: float


class RetryingProducer:
    def __init__(self, bootstrap: str, history: History) -> None:
        self.bootstrap = bootstrap
        self.history = history
        self.producer = durable_producer(bootstrap)
        self.started = False

    async def start(self) -> None:
        await self.producer.start()
        self.started = True

    async def stop(self) -> None:
        if self.started:
            await self.producer.stop()
            self.started = False

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        *,
        give_up_after: float = 180.0,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Acked | None:
        """The acknowledgement, or None when Kafka did not acknowledge it in time."""
        deadline = time.monotonic() + give_up_after
        attempt = 0
        while True:
            try:
                future = await self.producer.send(topic, value=value, key=key, headers=headers)
                metadata = await future
                return Acked(metadata.partition, metadata.offset, time.time())
            except (KafkaError, OSError, TimeoutError):
                self.history.producer_retries += 1
                if time.monotonic() > deadline:
                    return None
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
                attempt += 1
