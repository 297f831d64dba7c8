"""A test talks to the system as another system would: produce, then read the
output topics from the offsets they had before."""

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition


class TopicReader:
    """Reads a topic from the end offsets taken at creation (read_committed)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        self.records: list[ConsumerRecord] = []

    async def start(self) -> "TopicReader":
        await self.consumer.start()
        partitions = self.consumer.partitions_for_topic(self.topic)
        if not partitions:
            await self.consumer._client.force_metadata_update()
            partitions = self.consumer.partitions_for_topic(self.topic)
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self.consumer.assign(tps)
        ends = await self.consumer.end_offsets(tps)
        for tp, offset in ends.items():
            self.consumer.seek(tp, offset)
        return self

    async def stop(self) -> None:
        await self.consumer.stop()

    async def poll(self) -> None:
        fetched = await self.consumer.getmany(timeout_ms=100)
        for records in fetched.values():
            self.records.extend(records)

    async def wait_for(
        self, predicate: Callable[[list[ConsumerRecord]], bool], timeout: float = 30.0
    ) -> list[ConsumerRecord]:
        async with asyncio.timeout(timeout):
            while not predicate(self.records):
                await self.poll()
        return self.records

    def values(self) -> list[Any]:
        return [orjson.loads(r.value) for r in self.records]


async def produce(bootstrap: str, topic: str, items: list[tuple[str | None, Any]]) -> list[Any]:
    """Each value is JSON-encoded unless it is bytes; returns the acknowledgements."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic,
                value=value if isinstance(value, bytes) else orjson.dumps(value),
                key=key.encode() if key else None,
            )
            for key, value in items
        ]
        return list(await asyncio.gather(*futures))
    finally:
        await producer.stop()
