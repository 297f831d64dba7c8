"""Hostile records, written by a plain producer to the real topics while the
system runs: each lands in its topic's DLQ with its reason, and a normal record
behind it (same key, so the same partition) is still handled. And a system whose
log already holds such a record dead-letters it on start and becomes ready."""

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import ConsumerRecord

from shared.topics import (
    CONSENT_EVENTS,
    MESSAGES_DECISIONS,
    MESSAGES_REQUESTS,
    WHATSAPP_INBOUND,
    dlq,
)
from tests.support.eventually import eventually
from tests.support.kafka import TopicReader, produce
from tests.support.records import consent_granted, send_request, unique_phone
from tests.support.services import ServiceProcess
from tests.support.stack import Stack
from tests.support.webhooks import text_webhook

pytestmark = pytest.mark.e2e


def nested(depth: int, leaf: Any = "x") -> Any:
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


def deep_json(depth: int, leaf: str = '"x"') -> bytes:
    """JSON nested `depth` levels, written out (orjson refuses to write it)."""
    return ('{"k":' * depth + leaf + "}" * depth).encode()


def with_raw_field(body: dict[str, Any], field: str, raw: bytes) -> bytes:
    """`body` as JSON, with `field`'s value replaced by the raw JSON text `raw`."""
    placeholder = "__RAW__"
    text = orjson.dumps({**body, field: placeholder})
    return text.replace(f'"{placeholder}"'.encode(), raw)


def _grant(phone: str, **fields: Any) -> dict[str, Any]:
    return consent_granted(phone, "event_reminder", **fields)


# (name, how to spoil a ConsentGranted for `phone`, the DLQ reason)
EVENT_POISONS: list[tuple[str, Callable[[str], bytes], str]] = [
    (
        "evidence-300-deep",
        lambda p: json.dumps(_grant(p, evidence=nested(300))).encode(),
        "too_deep",
    ),
    (
        "evidence-3000-deep-with-nul",
        lambda p: with_raw_field(_grant(p), "evidence", deep_json(3000, '"\\u0000"')),
        "too_deep",
    ),
    (
        "evidence-near-1MiB",
        lambda p: orjson.dumps(_grant(p, evidence={"form": "x" * 900_000})),
        "too_large",
    ),
    (
        "invalid-utf8",
        lambda p: b'{"event_id": "\xff\xfe", "subject": "' + p.encode() + b'"}',
        "invalid_json",
    ),
    ("subject-a-number", lambda p: orjson.dumps({**_grant(p), "subject": 42}), "invalid_phone"),
    ("purposes-a-string", lambda p: orjson.dumps(_grant(p, purposes="x")), "invalid_schema"),
    (
        "link-to-itself",
        lambda p: orjson.dumps(_identity(p, "IdentityLinked", linked=p)),
        "invalid_identity",
    ),
    (
        "change-without-previous",
        lambda p: orjson.dumps(_identity(p, "IdentifierChanged")),
        "invalid_identity",
    ),
    (
        "link-from-another-producer",
        lambda p: orjson.dumps(_identity(p, "IdentityLinked", linked="RU.1", source="crm")),
        "invalid_source",
    ),
    (
        "platform-stop-without-purposes",
        lambda p: orjson.dumps(_identity(p, "MarketingStopped", source="whatsapp_status")),
        "missing_purposes",
    ),
    (
        "undeliverable-from-another-producer",
        lambda p: orjson.dumps(_identity(p, "DeliveryFailed", source="crm")),
        "invalid_source",
    ),
    (
        "link-to-a-non-identifier",
        lambda p: orjson.dumps(_identity(p, "IdentityLinked", linked="RU 1")),
        "invalid_phone",
    ),
]


def _identity(phone: str, kind: str, **fields: Any) -> dict[str, Any]:
    """An identity event a hostile or mistaken producer might write about `phone`."""
    body = {**_grant(phone), "type": kind, "source": "whatsapp_webhook"}
    for name in ("purposes", "evidence", "expires_at"):
        body.pop(name, None)
    return {**body, **fields}


def _reason(record: ConsumerRecord) -> str:
    return dict(record.headers).get("error.reason", b"").decode()


def _from(sent: Any) -> Callable[[list[ConsumerRecord]], list[ConsumerRecord]]:
    def matching(records: list[ConsumerRecord]) -> list[ConsumerRecord]:
        return [
            r
            for r in records
            if dict(r.headers).get("source.partition") == str(sent.partition).encode()
            and dict(r.headers).get("source.offset") == str(sent.offset).encode()
        ]

    return matching


async def _state(services: dict[str, ServiceProcess], phone: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=services["consent"].url) as client:
        response = await client.get(f"/v1/subjects/{phone}/consent")
    body: dict[str, Any] = response.json()
    return body


async def _eventually(services: dict[str, ServiceProcess], phone: str, status: str) -> None:
    await eventually(
        lambda: _state(services, phone), lambda state: state.get("status") == status, 30
    )


@pytest.mark.parametrize(
    ("spoil", "reason"), [pytest.param(f, r, id=n) for n, f, r in EVENT_POISONS]
)
async def test_a_hostile_event_is_dead_lettered_and_the_grant_behind_it_applied(
    stack: Stack,
    services: dict[str, ServiceProcess],
    spoil: Callable[[str], bytes],
    reason: str,
) -> None:
    phone = unique_phone()
    dead = await TopicReader(stack.kafka_bootstrap, dlq(CONSENT_EVENTS)).start()
    try:
        poison, _ = await produce(
            stack.kafka_bootstrap, CONSENT_EVENTS, [(phone, spoil(phone)), (phone, _grant(phone))]
        )
        await _eventually(services, phone, "opted_in")
        [letter] = _from(poison)(await dead.wait_for(lambda rs: bool(_from(poison)(rs))))
    finally:
        await dead.stop()
    assert _reason(letter) == reason


# (name, how to spoil a valid request, the DLQ reason)
REQUEST_POISONS: list[tuple[str, Callable[[dict[str, Any]], bytes], str]] = [
    (
        "message-300-deep",
        lambda r: json.dumps({**r, "message": {"type": "text", "text": nested(300)}}).encode(),
        "too_deep",
    ),
    ("message-3000-deep", lambda r: with_raw_field(r, "message", deep_json(3000)), "too_deep"),
    (
        "message-near-1MiB",
        lambda r: orjson.dumps({**r, "message": {"type": "text", "text": {"body": "x" * 900_000}}}),
        "too_large",
    ),
]


@pytest.mark.parametrize(
    ("spoil", "reason"), [pytest.param(f, r, id=n) for n, f, r in REQUEST_POISONS]
)
async def test_a_hostile_request_gets_its_one_decision_and_the_one_behind_is_decided(
    stack: Stack,
    services: dict[str, ServiceProcess],
    spoil: Callable[[dict[str, Any]], bytes],
    reason: str,
) -> None:
    phone = unique_phone()
    hostile = send_request(phone)
    raw = spoil(hostile)
    hostile_id = hostile["request_id"]
    behind = send_request(phone)
    ours = {hostile_id, behind["request_id"]}
    decisions = await TopicReader(stack.kafka_bootstrap, MESSAGES_DECISIONS).start()
    dead = await TopicReader(stack.kafka_bootstrap, dlq(MESSAGES_REQUESTS)).start()
    try:
        poison, _ = await produce(
            stack.kafka_bootstrap, MESSAGES_REQUESTS, [(phone, raw), (phone, behind)]
        )
        await decisions.wait_for(
            lambda rs: {orjson.loads(r.value)["request_id"] for r in rs} >= ours, timeout=60
        )
        [letter] = _from(poison)(await dead.wait_for(lambda rs: bool(_from(poison)(rs))))
    finally:
        await decisions.stop()
        await dead.stop()
    verdicts = {
        v["request_id"]: (v["decision"], v["reason"])
        for v in decisions.values()
        if v["request_id"] in ours
    }
    assert verdicts == {
        hostile_id: ("dropped", "invalid_request"),
        behind["request_id"]: ("dropped", "no_consent"),
    }
    assert _reason(letter) == reason


async def test_a_deep_webhook_is_dead_lettered_and_the_stop_behind_it_applied(
    stack: Stack, services: dict[str, ServiceProcess]
) -> None:
    phone = unique_phone()
    wa_id = phone.removeprefix("+")
    await produce(stack.kafka_bootstrap, CONSENT_EVENTS, [(phone, _grant(phone))])
    await _eventually(services, phone, "opted_in")
    hostile = with_raw_field(text_webhook(wa_id, "hello"), "extra", deep_json(300))
    dead = await TopicReader(stack.kafka_bootstrap, dlq(WHATSAPP_INBOUND)).start()
    try:
        poison, _ = await produce(
            stack.kafka_bootstrap,
            WHATSAPP_INBOUND,
            [(wa_id, hostile), (wa_id, text_webhook(wa_id, "STOP"))],
        )
        await _eventually(services, phone, "opted_out")
        [letter] = _from(poison)(await dead.wait_for(lambda rs: bool(_from(poison)(rs))))
    finally:
        await dead.stop()
    assert _reason(letter) == "too_deep"


async def test_a_log_holding_a_poison_record_recovers_on_start(
    stack: Stack, services: dict[str, ServiceProcess]
) -> None:
    consent = services["consent"]
    phone = unique_phone()
    dead = await TopicReader(stack.kafka_bootstrap, dlq(CONSENT_EVENTS)).start()
    consent.stop()
    try:
        poison, _ = await produce(
            stack.kafka_bootstrap,
            CONSENT_EVENTS,
            [
                (phone, json.dumps(_grant(phone, evidence=nested(300))).encode()),
                (phone, _grant(phone)),
            ],
        )
    finally:
        consent.start()
    try:
        await asyncio.to_thread(consent.wait_ready, 60)
        await _eventually(services, phone, "opted_in")
        [letter] = _from(poison)(await dead.wait_for(lambda rs: bool(_from(poison)(rs))))
    finally:
        await dead.stop()
    assert _reason(letter) == "too_deep"


async def test_hostile_identity_parts_of_a_webhook_never_hold_back_the_stop_beside_them(
    stack: Stack, services: dict[str, ServiceProcess]
) -> None:
    """Statuses and preferences that are not objects, a system message whose `system`
    is a string and a user id that is not one: the STOP in the same webhook still
    counts, and none of them stops the person's other purposes or links them."""
    phone = unique_phone()
    wa_id = phone.removeprefix("+")
    grant = consent_granted(phone, "event_reminder", "educational_material")
    await produce(stack.kafka_bootstrap, CONSENT_EVENTS, [(phone, grant)])
    await _eventually(services, phone, "opted_in")
    body = text_webhook(wa_id, "STOP")
    value = body["entry"][0]["changes"][0]["value"]
    value["statuses"] = ["sent", {"id": 7, "recipient_id": {"x": 1}}, None]
    # Each would be a marketing stop if read leniently: none is in the shape we read.
    value["user_preferences"] = [
        {"wa_id": [], "category": "marketing_messages", "value": "stop"},
        {"wa_id": wa_id, "category": "marketing_messages", "value": {"stop": True}},
        "stop",
    ]
    value["contacts"][0]["user_id"] = "not a user id; DROP TABLE"
    value["messages"].append({"id": "wamid.sys", "type": "system", "system": "changed"})
    dead = await TopicReader(stack.kafka_bootstrap, dlq(WHATSAPP_INBOUND)).start()
    try:
        [sent] = await produce(stack.kafka_bootstrap, WHATSAPP_INBOUND, [(wa_id, body)])
        await _eventually(services, phone, "opted_out")
        [letter] = _from(sent)(await dead.wait_for(lambda rs: bool(_from(sent)(rs))))
    finally:
        await dead.stop()
    assert _reason(letter) == "malformed_message"
    state = await _state(services, phone)
    assert state["identifiers"] == [phone], "a user id that is not one linked the number"
    assert state["stopped_by_platform"] == []


async def test_a_change_or_a_report_naming_no_valid_identifier_is_dead_lettered(
    stack: Stack, services: dict[str, ServiceProcess]
) -> None:
    """A number change to something that is not a number would leave the old number
    with its owner's consent, unseen: the record goes to the DLQ, and the STOP
    beside it still counts."""
    phone = unique_phone()
    wa_id = phone.removeprefix("+")
    await produce(stack.kafka_bootstrap, CONSENT_EVENTS, [(phone, _grant(phone))])
    await _eventually(services, phone, "opted_in")
    body = text_webhook(wa_id, "STOP")
    value = body["entry"][0]["changes"][0]["value"]
    value["messages"].append(
        {
            "from": wa_id,
            "id": "wamid.sys",
            "type": "system",
            "system": {"type": "user_changed_number", "wa_id": "12345"},
        }
    )
    value["statuses"] = [
        {"id": "wamid.s", "status": "failed", "recipient_id": "12", "errors": [{"code": 131026}]}
    ]
    dead = await TopicReader(stack.kafka_bootstrap, dlq(WHATSAPP_INBOUND)).start()
    try:
        [sent] = await produce(stack.kafka_bootstrap, WHATSAPP_INBOUND, [(wa_id, body)])
        await _eventually(services, phone, "opted_out")
        [letter] = _from(sent)(await dead.wait_for(lambda rs: bool(_from(sent)(rs))))
    finally:
        await dead.stop()
    assert _reason(letter) == "invalid_identity"
    detail = dict(letter.headers)["error.detail"].decode()
    assert "wamid.sys" in detail and "131026" in detail
