"""Runs the sender's consumer, started beside the dispatcher's gate and stopped with it."""

from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.dispatcher.sender.graph_api import GraphApi
from services.dispatcher.sender.handler import Sender
from services.dispatcher.sender.retry_policy import SendPolicy
from services.dispatcher.sender.store import SendStore
from services.dispatcher.settings import DispatcherSettings
from shared.http_ops import all_ready, broker_ready, database_ready
from shared.kafka.batch_consumer import BatchConsumer
from shared.kafka.clients import durable_producer
from shared.kafka.dlq import send_to_dlq
from shared.kafka.running_consumer import RunningConsumer
from shared.kafka.security import security_options
from shared.service_runner import close_all
from shared.settings import read_signing_key
from shared.topics import MESSAGES_OUTBOUND


def sender_consumer(bootstrap: str, group_id: str, offset_reset: str) -> AIOKafkaConsumer:
    """Builds a consumer with group_consumer's guarantees (manual commits after the
    effects, read_committed), with room for a batch whose sends back off:
    max.poll.interval of 15 minutes."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset=offset_reset,
        isolation_level="read_committed",
        max_poll_interval_ms=900_000,
        **security_options(),
    )


@dataclass
class RunningSender:
    sending: RunningConsumer
    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer
    graph: GraphApi

    @property
    def healthy(self) -> bool:
        return self.sending.healthy

    async def stop(self, drain_seconds: float = 5.0) -> None:
        # A batch in progress may finish (fewer 'in_flight' rows to resend later).
        await self.sending.stop(drain_seconds)
        await close_all(self.consumer.stop, self.producer.stop, self.graph.aclose)


async def start_sender(settings: DispatcherSettings, pool: Any) -> RunningSender:
    graph = GraphApi(
        settings.graph_api_url,
        settings.graph_api_version,
        settings.phone_number_id,
        settings.access_token,
        settings.sender_timeout_seconds,
    )
    producer = durable_producer(settings.kafka_bootstrap_servers)
    consumer = sender_consumer(
        settings.kafka_bootstrap_servers,
        settings.sender_group_id,
        settings.sender_auto_offset_reset,
    )
    await producer.start()
    await consumer.start()
    policy = SendPolicy(
        max_attempts=settings.sender_max_attempts,
        backoff_base=settings.sender_backoff_base_seconds,
        backoff_max=settings.sender_backoff_max_seconds,
        retry_after_max=settings.sender_retry_after_max_seconds,
    )
    sender = Sender(
        SendStore(pool),
        graph,
        producer,
        policy,
        concurrency=settings.sender_concurrency,
        resend_in_flight=settings.sender_resend_in_flight,
        promotional=settings.promotional_purposes,
        signing_key=read_signing_key(settings.signing_key, "DISPATCHER_SIGNING_KEY"),
    )
    loop = BatchConsumer(
        consumer,
        sender.handle,
        name="dispatcher-sender",
        max_records=settings.sender_max_batch,
        dead_letter=lambda record, rejected: send_to_dlq(producer, [(record, rejected)]),
        probe=lambda: all_ready(database_ready(pool), broker_ready(consumer)),
    )
    # Partitions change hands only between batches: a sender joining the group must
    # not read records whose POSTs are still under way here and post them again.
    consumer.subscribe([MESSAGES_OUTBOUND], listener=loop.listener())
    return RunningSender(loop.start(), consumer, producer, graph)
