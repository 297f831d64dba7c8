"""Wires the consent service: projector loop, query API, health, metrics."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from services.consent.access import AccessLog
from services.consent.api import subjects_router
from services.consent.erasure_job import ErasureJob
from services.consent.ledger.running import RunningLedger, start_ledgers
from services.consent.projector import Projector
from services.consent.settings import ConsentSettings
from services.consent.store import ConsentStore
from shared.db.migrated import open_migrated_pool
from shared.erasure.key_store import PostgresKeyStore
from shared.erasure.mode import BOUNDED_TOPICS, ErasureMode, erasure_mode
from shared.http_ops import all_ready, broker_ready, database_ready, service_apps
from shared.kafka.batch_consumer import BatchConsumer
from shared.kafka.clients import durable_producer, group_consumer
from shared.kafka.running_consumer import RunningConsumer
from shared.kafka.topic_retention import require_bounded_retention
from shared.service_runner import close_all, serve
from shared.topics import CONSENT_EVENTS


@dataclass
class Running:
    pool: Any
    api_pool: Any
    consumer: AIOKafkaConsumer
    projecting: RunningConsumer
    ledgers: list[RunningLedger]


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


def create_app(settings: ConsentSettings) -> tuple[FastAPI, FastAPI]:
    running: list[Running] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if erasure_mode() is ErasureMode.ON:
            # Before anything opens: an erasure could not be honoured in time.
            await require_bounded_retention(settings.kafka_bootstrap_servers, BOUNDED_TOPICS)
        # Two roles, two pools (docs/security.md): the query API cannot write what
        # the projector may. One batch is applied at a time: the projector's pool
        # serves it, the idle positions and the probes; the API's, the requests.
        pool = await open_migrated_pool(settings.projector_url, max_size=8)
        try:
            api_pool = await open_migrated_pool(settings.api_url, max_size=8)
        except BaseException:
            await pool.close()
            raise
        erasure = settings.erasure()
        index = erasure.pseudonyms()
        keys = erasure.data_keys(PostgresKeyStore(pool))
        store = ConsentStore(pool, index)
        producer = durable_producer(settings.kafka_bootstrap_servers)
        consumer = group_consumer(settings.kafka_bootstrap_servers, settings.group_id)
        projector = Projector(store, consumer, producer, settings.trust())
        await producer.start()
        await consumer.start()
        loop = projector_loop(consumer, projector, pool, settings.max_batch)
        # Between batches, then the projector's seek to the tracked positions: a
        # member taking a partition over does not apply (and dead-letter) again
        # what a batch in flight here is about to commit.
        consumer.subscribe([CONSENT_EVENTS], listener=loop.listener(projector))
        projecting = loop.start()
        ledgers = await start_ledgers(settings, pool, keys, index)
        erasing = asyncio.create_task(
            ErasureJob(
                pool,
                index,
                timedelta(seconds=settings.erasure_grace_seconds),
                interval=settings.erasure_job_interval_seconds,
                keys=keys,
            ).run(),
            name="erasures",
        )
        running.append(Running(pool, api_pool, consumer, projecting, ledgers))
        app.include_router(
            subjects_router(
                ConsentStore(api_pool),
                settings.tokens(),
                AccessLog(api_pool, settings.pseudonyms()),
                producer,
            )
        )
        try:
            yield
        finally:
            erasing.cancel()
            await asyncio.gather(erasing, return_exceptions=True)
            for ledger in ledgers:
                await ledger.stop()
            await projecting.stop()
            await close_all(consumer.stop, producer.stop, pool.close, api_pool.close)

    async def readiness() -> dict[str, bool]:
        if not running:
            return {"started": False}
        r = running[0]
        return {
            "database": await database_ready(r.pool),
            "api_database": await database_ready(r.api_pool),
            "broker": await broker_ready(r.consumer),
            "consumer_assigned": bool(r.consumer.assignment()),
            "projector_running": r.projecting.healthy,
            "ledgers_running": all(ledger.loop.healthy for ledger in r.ledgers),
        }

    app, admin = service_apps(
        "consent", lifespan, readiness, ops_on_public_port=settings.ops_on_public_port
    )
    return app, admin


def main() -> None:
    settings = ConsentSettings()
    app, admin = create_app(settings)
    serve(app, settings, settings.http_port, admin)
