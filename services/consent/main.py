"""Wires the consent service: projector loop, query API, health, metrics."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from services.consent.api import subjects_router
from services.consent.projector import Projector
from services.consent.settings import ConsentSettings
from services.consent.store import ConsentStore
from shared.db.migrate import apply_migrations
from shared.db.pool import open_pool
from shared.http_ops import all_ready, broker_ready, database_ready, ops_router
from shared.kafka.batch_consumer import BatchConsumer
from shared.kafka.clients import durable_producer, group_consumer
from shared.kafka.running_consumer import RunningConsumer
from shared.service_runner import close_all, serve
from shared.topics import CONSENT_EVENTS


@dataclass
class Running:
    pool: Any
    consumer: AIOKafkaConsumer
    projecting: RunningConsumer


def projector_loop(
    consumer: AIOKafkaConsumer, projector: Projector, pool: Any, max_batch: int
) -> BatchConsumer:
    """Builds the projector's consume loop: a record that fails on its own while the
    database and the broker answer is dead-lettered and its position tracked."""
    return BatchConsumer(
        consumer,
        projector.handle,
        name="projector",
        max_records=max_batch,
        on_poll=projector.track_idle_positions,
        dead_letter=projector.dead_letter,
        probe=lambda: all_ready(database_ready(pool), broker_ready(consumer)),
    )


def create_app(settings: ConsentSettings) -> FastAPI:
    running: list[Running] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await apply_migrations(settings.database_url)
        pool = await open_pool(settings.database_url, max_size=8)
        store = ConsentStore(pool)
        producer = durable_producer(settings.kafka_bootstrap_servers)
        consumer = group_consumer(settings.kafka_bootstrap_servers, settings.group_id)
        projector = Projector(store, consumer, producer)
        await producer.start()
        await consumer.start()
        loop = projector_loop(consumer, projector, pool, settings.max_batch)
        # Between batches, then the projector's seek to the tracked positions: a
        # member taking a partition over does not apply (and dead-letter) again
        # what a batch in flight here is about to commit.
        consumer.subscribe([CONSENT_EVENTS], listener=loop.listener(projector))
        projecting = loop.start()
        running.append(Running(pool, consumer, projecting))
        app.include_router(subjects_router(store))
        try:
            yield
        finally:
            await projecting.stop()
            await close_all(consumer.stop, producer.stop, pool.close)

    async def readiness() -> dict[str, bool]:
        if not running:
            return {"started": False}
        r = running[0]
        return {
            "database": await database_ready(r.pool),
            "broker": await broker_ready(r.consumer),
            "consumer_assigned": bool(r.consumer.assignment()),
            "projector_running": r.projecting.healthy,
        }

    app = FastAPI(title="consent", lifespan=lifespan)
    app.include_router(ops_router(readiness))
    return app


def main() -> None:
    settings = ConsentSettings()
    serve(create_app(settings), settings, settings.http_port)
