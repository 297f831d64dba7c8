"""Wiring of inbound: the webhook receiver (HTTP) and the reply consumer (FastStream)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage

from services.inbound.domain.classifier import DEFAULT_KEYWORDS, KeywordConfig, Language
from services.inbound.domain.replies import DEFAULT_CONFIRMATIONS
from services.inbound.replies import ReplyProcessor
from services.inbound.settings import InboundSettings
from services.inbound.webhook import webhook_router
from shared.http_ops import ops_router
from shared.kafka.provision import DLQ_MAX_MESSAGE_BYTES
from shared.service_runner import serve
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


async def raw_bytes(message: StreamMessage[Any]) -> bytes:
    """The body as sent: a record that claims to be JSON and is not must reach our
    parser (and the DLQ), not fail in FastStream's decoder and be redelivered forever."""
    return message.body


def build_broker(settings: InboundSettings) -> tuple[KafkaBroker, ReplyProcessor]:
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        max_request_size=DLQ_MAX_MESSAGE_BYTES,  # a dead letter of the largest webhook record
    )
    confirmations = {
        Language.EN: settings.confirmation_text_en or DEFAULT_CONFIRMATIONS[Language.EN],
        Language.RU: settings.confirmation_text_ru or DEFAULT_CONFIRMATIONS[Language.RU],
    }
    processor = ReplyProcessor(broker, keywords_from(settings), confirmations)

    # Commit only after the event and the confirmation are acknowledged; on an
    # error the offset is rewound and the record comes again (ids are derived,
    # so the repeat is harmless).
    @broker.subscriber(
        WHATSAPP_INBOUND,
        group_id=settings.group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        decoder=raw_bytes,
    )
    async def on_webhook(body: bytes, message: KafkaMessage) -> None:
        """A WhatsApp Cloud API webhook body, unchanged (docs/schemas/whatsapp-webhook)."""
        await processor.process(message.raw_message)

    return broker, processor


def create_app(settings: InboundSettings) -> FastAPI:
    broker, _ = build_broker(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await broker.start()
        try:
            yield
        finally:
            await broker.stop()

    async def readiness() -> dict[str, bool]:
        subscriber = next(iter(broker.subscribers))
        consumer = getattr(subscriber, "consumer", None)
        return {
            "broker": await broker.ping(timeout=2.0),
            "consumer_assigned": bool(consumer and consumer.assignment()),
        }

    app = FastAPI(title="inbound", lifespan=lifespan)
    app.include_router(ops_router(readiness))
    app.include_router(
        webhook_router(
            broker,
            settings.whatsapp_app_secret.get_secret_value().encode(),
            settings.whatsapp_verify_token.get_secret_value(),
            settings.max_body_bytes,
        )
    )
    return app


def main() -> None:
    settings = InboundSettings()
    serve(create_app(settings), settings, settings.http_port)
