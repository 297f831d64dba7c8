"""The three services as real processes on the real broker and database,
driven the way another system would drive them."""

import pytest

from shared.topics import CONSENT_EVENTS, MESSAGES_DECISIONS, MESSAGES_OUTBOUND, MESSAGES_REQUESTS
from tests.support.kafka import TopicReader, produce
from tests.support.records import consent_granted as grant
from tests.support.records import send_request as reminder
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


async def test_consented_send_is_dispatched_and_unconsented_dropped(
    stack: Stack, services: object, phone: str
) -> None:
    stranger = "+7916" + phone[-7:][::-1]
    decisions = await TopicReader(stack.kafka_bootstrap, MESSAGES_DECISIONS).start()
    outbound = await TopicReader(stack.kafka_bootstrap, MESSAGES_OUTBOUND).start()
    try:
        await produce(
            stack.kafka_bootstrap, CONSENT_EVENTS, [(phone, grant(phone, "event_reminder"))]
        )
        consented, cold = reminder(phone), reminder(stranger)
        await produce(
            stack.kafka_bootstrap, MESSAGES_REQUESTS, [(phone, consented), (stranger, cold)]
        )
        ids = {consented["request_id"], cold["request_id"]}
        await decisions.wait_for(lambda rs: ids <= {v["request_id"] for v in map(_json, rs)})
        by_id = {v["request_id"]: v for v in decisions.values() if v["request_id"] in ids}
        assert by_id[consented["request_id"]]["decision"] == "dispatched"
        assert by_id[consented["request_id"]]["reason"] == "consented"
        assert by_id[cold["request_id"]]["decision"] == "dropped"
        assert by_id[cold["request_id"]]["reason"] == "no_consent"
        await outbound.wait_for(lambda rs: any(_json(r).get("to") == phone[1:] for r in rs))
        sent = [v for v in outbound.values() if v["to"] in (phone[1:], stranger[1:])]
        assert sent == [
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": phone[1:],
                "type": "text",
                "text": {"body": "Reminder: the workshop starts at 10:00"},
            }
        ]
    finally:
        await decisions.stop()
        await outbound.stop()


def _json(record: object) -> dict[str, object]:
    import orjson

    return orjson.loads(record.value)  # type: ignore[attr-defined,no-any-return]
