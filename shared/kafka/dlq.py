"""Writes to the dead-letter companion of every consumed topic (CONTRACT.md section 1):
the original key and bytes, unchanged, with the reason in headers."""

import asyncio

from aiokafka import AIOKafkaProducer, ConsumerRecord

from shared.rejection import Rejected
from shared.topics import dlq


def dlq_headers(record: ConsumerRecord, rejected: Rejected) -> list[tuple[str, bytes]]:
    headers = [
        ("error.reason", rejected.reason.encode()),
        ("error.detail", rejected.detail[:1000].encode()),
        ("source.topic", record.topic.encode()),
        ("source.partition", str(record.partition).encode()),
        ("source.offset", str(record.offset).encode()),
    ]
    # The original headers travel along so nothing the producer said is lost.
    return headers + [(k, v) for k, v in (record.headers or ()) if not k.startswith("error.")]


async def send_to_dlq(
    producer: AIOKafkaProducer, rejects: list[tuple[ConsumerRecord, Rejected]]
) -> None:
    """Awaits every acknowledgement: the caller commits the source offsets after this."""
    futures = [
        await producer.send(
            dlq(record.topic),
            value=record.value,
            key=record.key,
            headers=dlq_headers(record, rejected),
        )
        for record, rejected in rejects
    ]
    await asyncio.gather(*futures)
