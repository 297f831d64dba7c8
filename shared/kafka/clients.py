"""Configures the Kafka clients for the guarantees: nothing acknowledged before it is durable."""

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.kafka.security import security_options
from shared.kafka.topic_specs import DLQ_MAX_MESSAGE_BYTES


def bootstrap_addresses(bootstrap: str) -> list[str]:
    """Returns KAFKA_BOOTSTRAP_SERVERS ("host:port,host:port") as a list. aiokafka splits
    such a string itself, but FastStream's KafkaBroker takes a string as one
    address, and then a cluster's bootstrap string cannot be resolved."""
    return [address.strip() for address in bootstrap.split(",") if address.strip()]


def durable_producer(
    bootstrap: str, transactional_id: str | None = None, retry_backoff_ms: int = 100
) -> AIOKafkaProducer:
    """Builds an idempotent producer with acks=all: a retried send is never a
    duplicate, and an acknowledged record survives the leader's loss."""
    return AIOKafkaProducer(
        retry_backoff_ms=retry_backoff_ms,
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        transactional_id=transactional_id,
        linger_ms=2,
        max_batch_size=256 * 1024,
        request_timeout_ms=15_000,
        # Room for a dead letter of the largest input record; each topic's own
        # max.message.bytes still bounds what the broker takes.
        max_request_size=DLQ_MAX_MESSAGE_BYTES,
        **security_options(),
    )


def group_consumer(bootstrap: str, group_id: str, *topics: str) -> AIOKafkaConsumer:
    """Commits are ours to make after the effects are durable; read_committed so a
    transactional producer's aborted records never count."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **security_options(),
    )


def offsets_reader(bootstrap: str) -> AIOKafkaConsumer:
    """Builds a group-less consumer used only to ask for end offsets (the freshness fence)."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        **security_options(),
    )


async def end_offsets(consumer: AIOKafkaConsumer, topic: str) -> dict[int, int]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
    if not partitions:
        raise LookupError(f"topic {topic} has no partitions (is it provisioned?)")
    ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
    return {tp.partition: offset for tp, offset in ends.items()}


async def assign_from_end(consumer: AIOKafkaConsumer, topic: str) -> None:
    """Assigns every partition of `topic` (no group) at its end offset: the consumer
    reads what is written from now on, as a watcher of a topic's outputs does."""
    ends = await end_offsets(consumer, topic)
    consumer.assign([TopicPartition(topic, p) for p in sorted(ends)])
    for partition, offset in ends.items():
        consumer.seek(TopicPartition(topic, partition), offset)


async def consumer_lag(consumer: AIOKafkaConsumer, topic: str | None = None) -> dict[int, int]:
    """Counts the records behind the last known high watermark, per assigned partition
    of `topic` (or of every topic), from the last fetch: no broker round trip."""
    lag: dict[int, int] = {}
    for tp in consumer.assignment():
        if topic is not None and tp.topic != topic:
            continue
        highwater = consumer.highwater(tp)
        if highwater is not None:
            lag[tp.partition] = max(0, highwater - await consumer.position(tp))
    return lag
