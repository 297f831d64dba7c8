"""A test talks to the system as another system would: produce, then read the
output topics from the offsets they had before."""

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.kafka.clients import assign_from_end
from shared.kafka.security import security_options
from tests.support.signing import signed_headers


class TopicReader:
    """Reads a topic from the end offsets taken at creation (read_committed)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
            **security_options(),
        )
        self.records: list[ConsumerRecord] = []

    async def start(self) -> "TopicReader":
        await self.consumer.start()
        await assign_from_end(self.consumer, self.topic)
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


async def produce(
    bootstrap: str,
    topic: str,
    items: list[tuple[str | None, Any]],
    *,
    sign: bool = True,
    headers: list[tuple[str, bytes]] | None = None,
) -> list[Any]:
    """Each value is JSON-encoded unless it is bytes; returns the acknowledgements. An
    event that claims WhatsApp is signed as inbound signs it, unless `sign` is False
    or `headers` are given instead."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **security_options()
    )
    await producer.start()
    try:
        encoded = [(k, v if isinstance(v, bytes) else orjson.dumps(v)) for k, v in items]
        futures = [
            await producer.send(
                topic,
                value=value,
                key=key.encode() if key else None,
                headers=headers if headers is not None else signed_headers(value) if sign else [],
            )
            for key, value in encoded
        ]
        return list(await asyncio.gather(*futures))
    finally:
        await producer.stop()


@asynccontextmanager
async def private_topics(
    bootstrap: str, topics: Mapping[str, Mapping[str, str]], partitions: int = 3
) -> AsyncIterator[None]:
    """Topics of a test's own (name -> configs), with `partitions` each, deleted after:
    what a test produces there, no service running beside it reads."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security_options())
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, partitions, 1, topic_configs=dict(c)) for name, c in topics.items()]
        )
        async with asyncio.timeout(15):  # until every partition has a leader
            while True:
                described = await admin.describe_topics(list(topics))
                if all(len(t["partitions"]) == partitions for t in described):
                    break
                await asyncio.sleep(0.1)
        yield
    finally:
        await admin.delete_topics(list(topics))
        await admin.close()
