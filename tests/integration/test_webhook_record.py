"""The webhook receiver on the real broker: the record it makes durable on
whatsapp.inbound.v1 is Meta's body byte for byte with Meta's `X-Hub-Signature-256`
in the `x-hub-signature-256` header, as Kafka hands it to a consumer; that is what
lets INBOUND_TOPIC_TRUST=meta_signed believe it, and nothing else on the topic."""

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from aiokafka import ConsumerRecord
from fastapi import FastAPI
from pydantic import SecretStr

from services.inbound.main import build_broker
from services.inbound.meta_signature import RECORD_HEADER, RecordTrust, TopicTrust
from services.inbound.settings import InboundSettings
from services.inbound.webhook import webhook_router
from shared.kafka.security import kafka_security
from shared.topics import WHATSAPP_INBOUND
from tests.support.kafka import TopicReader
from tests.support.records import unique_phone
from tests.support.signing import INBOUND_KEY
from tests.support.stack import Stack
from tests.support.webhooks import APP_SECRET, VERIFY_TOKEN, signed, text_webhook

pytestmark = pytest.mark.integration


@pytest.fixture
async def receiver(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """Inbound's webhook receiver, publishing through the broker the service builds."""
    settings = InboundSettings(
        kafka_bootstrap_servers=stack.kafka_bootstrap,
        whatsapp_app_secret=SecretStr(APP_SECRET.decode()),
        whatsapp_verify_token=SecretStr(VERIFY_TOKEN),
        signing_key=SecretStr(INBOUND_KEY.setting()),
    )
    broker, _ = build_broker(settings, kafka_security().broker_security())
    app = FastAPI()
    app.include_router(webhook_router(broker, APP_SECRET, VERIFY_TOKEN, settings.max_body_bytes))
    await broker.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://inbound"
        ) as client:
            yield client
    finally:
        await broker.stop()


def _header(record: ConsumerRecord, name: str) -> list[bytes | None]:
    return [v for k, v in record.headers if k == name]


async def test_the_received_body_is_published_with_metas_signature_header(
    stack: Stack, receiver: httpx.AsyncClient
) -> None:
    # Not a keyword: an inbound running beside the test writes nothing of it.
    raw, headers = signed(text_webhook(unique_phone()[1:], "hello from the header test"))
    topic = await TopicReader(stack.kafka_bootstrap, WHATSAPP_INBOUND).start()
    try:
        answer = await receiver.post("/webhooks/whatsapp", content=raw, headers=headers)
        assert answer.status_code == 200, answer.text

        def ours(records: list[ConsumerRecord]) -> list[ConsumerRecord]:
            return [r for r in records if r.value == raw]

        [record] = ours(await topic.wait_for(lambda rs: len(ours(rs)) == 1))
    finally:
        await topic.stop()

    assert _header(record, RECORD_HEADER) == [headers["X-Hub-Signature-256"].encode()]
    assert orjson.loads(record.value) == orjson.loads(raw)
    trust = RecordTrust(TopicTrust.META_SIGNED, APP_SECRET)
    assert trust.provenance(record.value, record.headers).proven
    # The same bytes without Meta's header, or with another body, prove nothing.
    others = [(k, v) for k, v in record.headers if k != RECORD_HEADER]
    assert not trust.provenance(record.value, others).proven
    assert not trust.provenance(record.value + b"\n", record.headers).proven
