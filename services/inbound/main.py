"""Wires inbound: the webhook receiver (HTTP, publishing through FastStream)
and the reply consumer (the shared consume loop, which isolates poison records)."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity

from services.inbound.domain.classifier import DEFAULT_KEYWORDS, KeywordConfig, Language
from services.inbound.domain.replies import DEFAULT_CONFIRMATIONS
from services.inbound.meta_signature import RecordTrust
from services.inbound.reply_consumer import ReplyProcessor
from services.inbound.settings import InboundSettings
from services.inbound.webhook import webhook_router
from shared.http_ops import broker_ready, service_apps
from shared.kafka.batch_consumer import BatchConsumer
from shared.kafka.clients import bootstrap_addresses, group_consumer
from shared.kafka.running_consumer import RunningConsumer
from shared.kafka.security import kafka_security
from shared.kafka.topic_specs import DLQ_MAX_MESSAGE_BYTES
from shared.service_runner import serve
from shared.settings import read_signing_key
from shared.topics import WHATSAPP_INBOUND


def keywords_from(settings: InboundSettings) -> KeywordConfig:
    """Extra keywords come as `WORD:lang` pairs, comma-separated (`HALT:en,ХВАТИТ:ru`)."""

    def parse(value: str) -> dict[str, Language]:
        pairs = (item.rsplit(":", 1) if ":" in item else (item, "en") for item in value.split(","))
        return {word.strip(): Language(lang.strip()) for word, lang in pairs if word.strip()}

    extra_out = parse(settings.extra_opt_out_keywords)
    extra_in = parse(settings.extra_opt_in_keywords)
    if not extra_out and not extra_in:
        return DEFAULT_KEYWORDS
    return KeywordConfig(
        opt_out={**DEFAULT_KEYWORDS.opt_out, **extra_out},
        opt_in={**DEFAULT_KEYWORDS.opt_in, **extra_in},
    )


def build_broker(
    settings: InboundSettings, security: BaseSecurity | None = None
) -> tuple[KafkaBroker, ReplyProcessor]:
    """`security` is the service's (KAFKA_SECURITY_PROTOCOL, ...); None for a broker
    that is only described (services/asyncapi.py), so the documents never depend
    on the environment they are generated in."""
    broker = KafkaBroker(
        bootstrap_addresses(settings.kafka_bootstrap_servers),
        # FastStream's own access logger has a handler of its own and does not
        # propagate, so what it writes would bypass the masking: a plain logger
        # propagates to the root handler, which masks.
        logger=logging.getLogger("faststream.kafka"),
        enable_idempotence=True,
        acks="all",
        max_request_size=DLQ_MAX_MESSAGE_BYTES,  # a dead letter of the largest webhook record
        security=security,
    )
    confirmations = {
        Language.EN: settings.confirmation_text_en or DEFAULT_CONFIRMATIONS[Language.EN],
        Language.RU: settings.confirmation_text_ru or DEFAULT_CONFIRMATIONS[Language.RU],
    }
    processor = ReplyProcessor(
        broker,
        keywords_from(settings),
        confirmations,
        read_signing_key(settings.signing_key, "INBOUND_SIGNING_KEY"),
        settings.promotional_purposes,
        RecordTrust(settings.topic_trust, settings.whatsapp_app_secret.get_secret_value().encode()),
    )
    return broker, processor


@dataclass
class Running:
    consumer: AIOKafkaConsumer
    replying: RunningConsumer


def create_app(settings: InboundSettings) -> tuple[FastAPI, FastAPI]:
    broker, processor = build_broker(settings, kafka_security().broker_security())
    running: list[Running] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await broker.start()
        consumer = group_consumer(settings.kafka_bootstrap_servers, settings.group_id)
        await consumer.start()
        # Committed only after the event and the confirmation are acknowledged; a
        # retried record publishes them again under the same derived ids, harmless.
        loop = BatchConsumer(
            consumer,
            processor.handle,
            name="inbound-replies",
            dead_letter=processor.dead_letter,
            probe=lambda: broker.ping(timeout=2.0),
        )
        consumer.subscribe([WHATSAPP_INBOUND], listener=loop.listener())
        running.append(Running(consumer, loop.start()))
        try:
            yield
        finally:
            await running[0].replying.stop()
            await consumer.stop()
            await broker.stop()

    async def readiness() -> dict[str, bool]:
        if not running:
            return {"started": False}
        r = running[0]
        return {
            "broker": await broker_ready(r.consumer),
            "consumer_assigned": bool(r.consumer.assignment()),
            "replies_running": r.replying.healthy,
        }

    app, admin = service_apps(
        "inbound", lifespan, readiness, ops_on_public_port=settings.ops_on_public_port
    )
    app.include_router(
        webhook_router(
            broker,
            settings.whatsapp_app_secret.get_secret_value().encode(),
            settings.whatsapp_verify_token.get_secret_value(),
            settings.max_body_bytes,
        )
    )
    return app, admin


def main() -> None:
    settings = InboundSettings()
    app, admin = create_app(settings)
    serve(app, settings, settings.http_port, admin)
