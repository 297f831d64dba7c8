"""Signed webhooks through HTTP on the real broker, as Meta delivers them."""

import asyncio

import httpx
import orjson
import pytest

from services.inbound.meta_signature import RECORD_HEADER
from shared.topics import CONSENT_EVENTS, MESSAGES_REQUESTS, WHATSAPP_INBOUND
from tests.support.kafka import TopicReader, produce
from tests.support.services import ServiceProcess
from tests.support.stack import Stack
from tests.support.webhooks import VERIFY_TOKEN, signature_headers, signed, text_webhook

pytestmark = pytest.mark.e2e


def _for(records: list[object], subject: str) -> list[dict[str, object]]:
    """Other tests put unusable records on the same topics: skip them."""
    found = []
    for record in records:
        try:
            value = orjson.loads(record.value)  # type: ignore[attr-defined]
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict) and subject in (value.get("subject"), value.get("recipient")):
            found.append(value)
    return found


async def test_signed_stop_gives_one_opt_out_and_one_confirmation_even_when_redelivered(
    stack: Stack, services: dict[str, ServiceProcess], phone: str
) -> None:
    events = await TopicReader(stack.kafka_bootstrap, CONSENT_EVENTS).start()
    requests = await TopicReader(stack.kafka_bootstrap, MESSAGES_REQUESTS).start()
    try:
        raw, headers = signed(text_webhook(phone[1:], "СТОП"))
        async with httpx.AsyncClient(base_url=services["inbound"].url) as http:
            first = await http.post("/webhooks/whatsapp", content=raw, headers=headers)
            again = await http.post("/webhooks/whatsapp", content=raw, headers=headers)
        assert (first.status_code, again.status_code) == (200, 200)
        await events.wait_for(lambda rs: len(_for(rs, phone)) >= 2)
        await requests.wait_for(lambda rs: len(_for(rs, phone)) >= 2)
        opt_outs = _for(events.records, phone)
        assert {e["type"] for e in opt_outs} == {"OptedOut"}
        assert len({e["event_id"] for e in opt_outs}) == 1, "a redelivery became a second opt-out"
        confirmations = _for(requests.records, phone)
        assert len({c["request_id"] for c in confirmations}) == 1
        confirmation = confirmations[0]
        assert confirmation["purpose"] == "opt_out_confirmation"
        assert confirmation["opt_out_event_id"] == opt_outs[0]["event_id"]
        assert "отписались" in confirmation["message"]["text"]["body"]  # type: ignore[index]
    finally:
        await events.stop()
        await requests.stop()


async def test_a_signed_webhook_is_kept_on_the_topic_with_metas_signature_header(
    stack: Stack, services: dict[str, ServiceProcess], phone: str
) -> None:
    """What lets INBOUND_TOPIC_TRUST=meta_signed tell Meta's webhooks from a forger's."""
    raw_topic = await TopicReader(stack.kafka_bootstrap, WHATSAPP_INBOUND).start()
    try:
        raw, headers = signed(text_webhook(phone[1:], "START"))
        async with httpx.AsyncClient(base_url=services["inbound"].url) as http:
            answer = await http.post("/webhooks/whatsapp", content=raw, headers=headers)
        assert answer.status_code == 200
        await raw_topic.wait_for(lambda rs: any(r.value == raw for r in rs))
        [record] = [r for r in raw_topic.records if r.value == raw]
        assert (record.key, record.value) == (phone[1:].encode(), raw)
        assert (RECORD_HEADER, headers["X-Hub-Signature-256"].encode()) in record.headers
    finally:
        await raw_topic.stop()


async def test_a_bad_signature_is_refused_and_nothing_is_published(
    stack: Stack, services: dict[str, ServiceProcess], phone: str
) -> None:
    raw_topic = await TopicReader(stack.kafka_bootstrap, WHATSAPP_INBOUND).start()
    try:
        raw, headers = signed(text_webhook(phone[1:], "STOP"), secret=b"not-the-secret")
        async with httpx.AsyncClient(base_url=services["inbound"].url) as http:
            wrong = await http.post("/webhooks/whatsapp", content=raw, headers=headers)
            missing = await http.post("/webhooks/whatsapp", content=raw)
        assert (wrong.status_code, missing.status_code) == (401, 401)
        await asyncio.sleep(1)
        await raw_topic.poll()
        assert not [r for r in raw_topic.records if phone[1:].encode() in (r.value or b"")]
    finally:
        await raw_topic.stop()


async def test_meta_verification_handshake(services: dict[str, ServiceProcess]) -> None:
    async with httpx.AsyncClient(base_url=services["inbound"].url) as http:
        ok = await http.get(
            "/webhooks/whatsapp",
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": VERIFY_TOKEN,
                "hub.challenge": "1158201444",
            },
        )
        refused = await http.get(
            "/webhooks/whatsapp",
            params={"hub.mode": "subscribe", "hub.verify_token": "x", "hub.challenge": "1"},
        )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    assert refused.status_code == 403


async def test_bodies_that_are_not_json_or_too_large_are_refused(
    services: dict[str, ServiceProcess],
) -> None:
    async with httpx.AsyncClient(base_url=services["inbound"].url) as http:
        bad = await http.post(
            "/webhooks/whatsapp", content=b"not json", headers=signature_headers(b"not json")
        )
        huge = await http.post("/webhooks/whatsapp", content=b"x" * (1024 * 1024 + 1))
    assert bad.status_code == 400
    assert bad.json()["reason"] == "invalid_json"
    assert huge.status_code == 413


async def test_a_record_that_is_not_a_webhook_goes_to_the_dlq_and_the_consumer_goes_on(
    stack: Stack, services: dict[str, ServiceProcess], phone: str
) -> None:
    dead = await TopicReader(stack.kafka_bootstrap, WHATSAPP_INBOUND + ".dlq").start()
    events = await TopicReader(stack.kafka_bootstrap, CONSENT_EVENTS).start()
    try:
        marker = phone[1:].encode()
        await produce(
            stack.kafka_bootstrap,
            WHATSAPP_INBOUND,
            [
                (phone[1:], b"not json " + marker),
                (phone[1:], {"hello": phone}),
                # Stamped at the end of time by its sender: failed on every redelivery once.
                (phone[1:], text_webhook(phone[1:], "STOP", timestamp="253402300799")),
                (phone[1:], text_webhook(phone[1:], "STOP")),
            ],
        )
        await dead.wait_for(lambda rs: len([r for r in rs if marker in r.key]) >= 2)
        await events.wait_for(lambda rs: len(_for(rs, phone)) >= 2)
        reasons = sorted(
            dict(r.headers)["error.reason"].decode() for r in dead.records if marker in r.key
        )
        assert reasons == ["invalid_json", "not_a_webhook"]
        [original] = [r for r in dead.records if r.value == b"not json " + marker]
        assert dict(original.headers)["source.topic"] == WHATSAPP_INBOUND.encode()
    finally:
        await dead.stop()
        await events.stop()


async def test_a_stop_beside_a_malformed_message_is_applied_and_the_record_dead_lettered(
    stack: Stack, services: dict[str, ServiceProcess], phone: str
) -> None:
    body = text_webhook(phone[1:], "STOP")
    body["entry"][0]["changes"][0]["value"]["messages"].insert(0, {"type": "text"})  # no id
    dead = await TopicReader(stack.kafka_bootstrap, WHATSAPP_INBOUND + ".dlq").start()
    events = await TopicReader(stack.kafka_bootstrap, CONSENT_EVENTS).start()
    try:
        await produce(stack.kafka_bootstrap, WHATSAPP_INBOUND, [(phone[1:], body)])
        await events.wait_for(lambda rs: len(_for(rs, phone)) >= 1)
        key = phone[1:].encode()
        await dead.wait_for(lambda rs: any(r.key == key for r in rs))
        [letter] = [r for r in dead.records if r.key == key]
        assert dict(letter.headers)["error.reason"] == b"malformed_message"
        assert b"messages.0.id" in dict(letter.headers)["error.detail"]
        [event] = _for(events.records, phone)
        assert event["type"] == "OptedOut"
    finally:
        await dead.stop()
        await events.stop()
