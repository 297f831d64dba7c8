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

import argparse
import asyncio
import signal
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.contract.requests import SendRequest, parse_send_request
from shared.kafka.clients import durable_producer, group_consumer
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


def _producer(
    bootstrap: str, transactional_id: str | None, retry_backoff_ms: int | None
) -> AIOKafkaProducer:
    # The retry backoff is an experiment on what the broker's NOT_ENOUGH_REPLICAS
    # answers to transactional produces cost; aiokafka's default otherwise.
    if retry_backoff_ms is None:
        return durable_producer(bootstrap, transactional_id=transactional_id)
    return durable_producer(
        bootstrap, transactional_id=transactional_id, retry_backoff_ms=retry_backoff_ms
    )


async def run(args: argparse.Namespace) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    producer = _producer(
        args.bootstrap,
        f"bench-passthrough-{uuid.uuid4().hex}" if args.transactional else None,
        args.retry_backoff_ms,
    )
    consumer = group_consumer(args.bootstrap, args.group, args.source)
    await producer.start()
    await consumer.start()
    try:
        await passthrough(
            consumer,
            producer,
            args.target,
            args.group,
            args.max_batch,
            args.transactional,
            stopping,
            args.validate,
        )
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="localhost:9092")
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--max-batch", type=int, default=500)
    parser.add_argument("--transactional", action="store_true")
    parser.add_argument("--validate", action="store_true")
    parser.add_argument(
        "--retry-backoff-ms",
        type=int,
        help="the producer's retry backoff (aiokafka's default: 100 ms), to measure its share",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
