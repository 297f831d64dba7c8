"""Starts the two ledger writers of the consent service: the consent log's and the
decisions', each a consume loop of its own group that commits inside its
transactions."""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import ProducerFenced

from services.consent.ledger.entries import decision_sealable, event_sealable
from services.consent.ledger.writer import Describe, LedgerWriter
from services.consent.settings import ConsentSettings
from shared.erasure.key_cache import CachedDataKeys
from shared.http_ops import all_ready, broker_ready, database_ready
from shared.kafka.batch_consumer import BatchConsumer
from shared.kafka.clients import group_consumer
from shared.kafka.running_consumer import RunningConsumer
from shared.pseudonyms import Pseudonymizer
from shared.topics import CONSENT_EVENTS, CONSENT_LEDGER, DECISIONS_LEDGER, MESSAGES_DECISIONS


@dataclass
class RunningLedger:
    writer: LedgerWriter
    consumer: AIOKafkaConsumer
    loop: RunningConsumer

    async def stop(self) -> None:
        await self.loop.stop()
        await self.writer.stop()
        await self.consumer.stop()


async def start_ledgers(
    settings: ConsentSettings, pool: Any, keys: CachedDataKeys, index: Pseudonymizer
) -> list[RunningLedger]:
    trust = settings.trust()
    plan: list[tuple[str, str, str, Describe]] = [
        (
            CONSENT_EVENTS,
            CONSENT_LEDGER,
            settings.ledger_group_id,
            functools.partial(event_sealable, trust=trust),
        ),
        (
            MESSAGES_DECISIONS,
            DECISIONS_LEDGER,
            settings.decisions_ledger_group_id,
            decision_sealable,
        ),
    ]
    started: list[RunningLedger] = []
    for source, ledger, group, describe in plan:
        writer = LedgerWriter(
            source=source,
            ledger=ledger,
            describe=describe,
            keys=keys,
            index=index,
            pool=pool,
            bootstrap=settings.kafka_bootstrap_servers,
            group_id=group,
        )
        consumer = group_consumer(settings.kafka_bootstrap_servers, group)
        await consumer.start()
        loop = BatchConsumer(
            consumer,
            writer.handle,
            name=f"ledger {ledger}",
            max_records=settings.max_batch,
            commit=False,
            # Another instance took the partition's transactional id over.
            fatal=(ProducerFenced,),
            probe=_probe(pool, consumer),
        )
        consumer.subscribe([source], listener=loop.listener(writer))
        started.append(RunningLedger(writer, consumer, loop.start()))
    return started


def _probe(pool: Any, consumer: AIOKafkaConsumer) -> Callable[[], Any]:
    return lambda: all_ready(database_ready(pool), broker_ready(consumer))
