"""The dispatcher's yardstick: a bare aiokafka consume -> produce loop, nothing else.

    python -m bench.passthrough --source T --target S --group G [--transactional] [--validate]

The same clients as the dispatcher (`shared.kafka.clients`: read_committed group
consumer, acks=all idempotent producer, the same linger and batch size) and the
same batches (getmany of up to --max-batch records, 100 ms poll). Each value is
produced unchanged to --target with its key. Plain: send the batch, await every
acknowledgement, commit the offsets. --transactional: the dispatcher's shape, one
Kafka transaction per batch carrying the records and the consumed offsets.
--validate: each value is first validated as the dispatcher validates a request
(`parse_send_request`), and only a valid one is produced: the floor under any gate
that checks its input before passing it on. Runs until SIGTERM.
"""

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.contract.requests import SendRequest, parse_send_request
from shared.kafka.log_order import next_offsets


async def passthrough(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    target: str,
    group: str,
    max_batch: int,
    transactional: bool,
    stopping: asyncio.Event,
    validate: bool = False,
) -> None:
    while not stopping.is_set():
        fetched = await consumer.getmany(timeout_ms=100, max_records=max_batch)
        batch = [record for records in fetched.values() for record in records]
        if not batch:
            continue
        offsets = next_offsets(batch)
        if validate:
            batch = [r for r in batch if isinstance(parse_send_request(r.value), SendRequest)]
        if transactional:
            async with producer.transaction():
                for record in batch:
                    await producer.send(target, value=record.value, key=record.key)
                await producer.send_offsets_to_transaction(offsets, group)
        else:
            acks = [
                await producer.send(target, value=record.value, key=record.key) for record in batch
            ]
            await asyncio.gather(*acks)
            await consumer.commit(offsets)
