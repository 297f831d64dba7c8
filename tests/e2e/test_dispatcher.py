"""The send gate through the real broker and database, as other systems use it."""

import asyncio
from collections import Counter
from typing import Any

import orjson
import pytest

from shared.topics import CONSENT_EVENTS, MESSAGES_DECISIONS, MESSAGES_OUTBOUND, MESSAGES_REQUESTS
from tests.support.kafka import TopicReader, produce
from tests.support.records import consent_granted, opted_out, send_request, unique_phone
from tests.support.services import ServiceProcess
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


def _ids(records: list[object], wanted: set[str]) -> Counter[str]:
    found: Counter[str] = Counter()
    for record in records:
        value = orjson.loads(record.value)  # type: ignore[attr-defined]
        if value.get("request_id") in wanted:
            found[value["request_id"]] += 1
    return found


def _header_ids(records: list[object], wanted: set[str]) -> Counter[str]:
    found: Counter[str] = Counter()
    for record in records:
        headers = dict(record.headers or ())  # type: ignore[attr-defined]
        request_id = headers.get("request_id", b"").decode()
        if request_id in wanted:
            found[request_id] += 1
    return found


async def test_a_request_right_after_an_acknowledged_opt_out_is_always_dropped(
    stack: Stack, services: dict[str, ServiceProcess]
) -> None:
    """Contract section 4: 200 rounds of 'OptedOut acknowledged, then a request at once'."""
    decisions = await TopicReader(stack.kafka_bootstrap, MESSAGES_DECISIONS).start()
    rounds = []
    try:
        subjects = [unique_phone() for _ in range(200)]
        await produce(
            stack.kafka_bootstrap,
            CONSENT_EVENTS,
            [(s, consent_granted(s, occurred_at="2026-01-01T00:00:00Z")) for s in subjects],
        )
        for subject in subjects:
            await produce(stack.kafka_bootstrap, CONSENT_EVENTS, [(subject, opted_out(subject))])
            request = send_request(subject)
            await produce(stack.kafka_bootstrap, MESSAGES_REQUESTS, [(subject, request)])
            rounds.append(request["request_id"])
        wanted = set(rounds)
        await decisions.wait_for(lambda rs: len(_ids(rs, wanted)) == len(wanted), timeout=120)
        verdicts = {
            v["request_id"]: (v["decision"], v["reason"])
            for v in decisions.values()
            if v["request_id"] in wanted
        }
        assert set(verdicts.values()) == {("dropped", "opted_out")}
    finally:
        await decisions.stop()


async def test_a_repeated_request_id_gets_one_decision_and_is_never_sent_twice(
    stack: Stack, services: dict[str, ServiceProcess], phone: str
) -> None:
    decisions = await TopicReader(stack.kafka_bootstrap, MESSAGES_DECISIONS).start()
    outbound = await TopicReader(stack.kafka_bootstrap, MESSAGES_OUTBOUND).start()
    try:
        await produce(stack.kafka_bootstrap, CONSENT_EVENTS, [(phone, consent_granted(phone))])
        request = send_request(phone)
        await produce(stack.kafka_bootstrap, MESSAGES_REQUESTS, [(phone, request)] * 3)
        await asyncio.sleep(1)
        await produce(stack.kafka_bootstrap, MESSAGES_REQUESTS, [(phone, request)])
        later = send_request(phone)  # a marker: once decided, the repeats were too
        await produce(stack.kafka_bootstrap, MESSAGES_REQUESTS, [(phone, later)])
        wanted = {request["request_id"], later["request_id"]}
        await decisions.wait_for(lambda rs: len(_ids(rs, wanted)) == 2)
        await outbound.wait_for(lambda rs: len(_header_ids(rs, wanted)) == 2)
        await asyncio.sleep(1)
        await decisions.poll()
        await outbound.poll()
        assert _ids(decisions.records, wanted) == {request["request_id"]: 1, later["request_id"]: 1}
        assert _header_ids(outbound.records, wanted) == {
            request["request_id"]: 1,
            later["request_id"]: 1,
        }
    finally:
        await decisions.stop()
        await outbound.stop()


async def test_unusable_requests_go_to_the_dlq_and_those_with_an_id_get_a_decision(
    stack: Stack, services: dict[str, ServiceProcess], phone: str
) -> None:
    decisions = await TopicReader(stack.kafka_bootstrap, MESSAGES_DECISIONS).start()
    dead = await TopicReader(stack.kafka_bootstrap, MESSAGES_REQUESTS + ".dlq").start()
    try:
        bad_phone = send_request("12345")
        await produce(
            stack.kafka_bootstrap,
            MESSAGES_REQUESTS,
            [(phone, b"not json"), (phone, bad_phone), (phone, {"no": "id"})],
        )
        await dead.wait_for(lambda rs: len(rs) >= 3)
        reasons = [dict(r.headers)["error.reason"].decode() for r in dead.records[:3]]
        assert sorted(reasons) == ["invalid_json", "invalid_phone", "invalid_request_id"]
        for record in dead.records[:3]:
            headers = dict(record.headers)
            assert headers["source.topic"] == MESSAGES_REQUESTS.encode()
            assert {"error.detail", "source.partition", "source.offset"} <= set(headers)
        wanted = {bad_phone["request_id"]}
        await decisions.wait_for(lambda rs: len(_ids(rs, wanted)) == 1)
        [decision] = [v for v in decisions.values() if v["request_id"] in wanted]
        assert (decision["decision"], decision["reason"]) == ("dropped", "invalid_request")
    finally:
        await decisions.stop()
        await dead.stop()


async def test_a_nul_character_anywhere_in_a_request_never_stops_the_dispatcher(
    stack: Stack, services: dict[str, ServiceProcess], phone: str
) -> None:
    """PostgreSQL's text and jsonb cannot hold U+0000: such a request is refused like
    any other unusable one, and the requests after it are decided."""
    await produce(stack.kafka_bootstrap, CONSENT_EVENTS, [(phone, consent_granted(phone))])
    nul_id = send_request(phone, request_id="id-\u0000-1")
    nul_body = send_request(phone, message={"type": "text", "text": {"body": "a\u0000b"}})
    nul_purpose = send_request(phone, purpose="event\u0000reminder")
    later = send_request(phone)
    decisions = await TopicReader(stack.kafka_bootstrap, MESSAGES_DECISIONS).start()
    dead = await TopicReader(stack.kafka_bootstrap, MESSAGES_REQUESTS + ".dlq").start()
    try:
        await produce(
            stack.kafka_bootstrap,
            MESSAGES_REQUESTS,
            [(phone, nul_id), (phone, nul_body), (phone + "\u0000", nul_purpose), (phone, later)],
        )
        wanted = {r["request_id"] for r in (nul_body, nul_purpose, later)}
        await decisions.wait_for(lambda rs: len(_ids(rs, wanted)) == 3, timeout=60)
        by_id = {v["request_id"]: v for v in decisions.values() if v["request_id"] in wanted}
        assert by_id[nul_body["request_id"]]["reason"] == "invalid_request"
        assert by_id[nul_body["request_id"]]["detail"].startswith("invalid_message")
        assert by_id[nul_purpose["request_id"]]["reason"] == "invalid_request"
        assert "\u0000" not in str(by_id[nul_purpose["request_id"]])
        assert (by_id[later["request_id"]]["decision"], by_id[later["request_id"]]["reason"]) == (
            "dispatched",
            "consented",
        )
        await dead.wait_for(lambda rs: len(_dead_for(rs, nul_id["request_id"])) == 1)
        [letter] = _dead_for(dead.records, nul_id["request_id"])
        assert dict(letter.headers)["error.reason"] == b"invalid_request_id"
        assert not _ids(decisions.records, {nul_id["request_id"]})
    finally:
        await decisions.stop()
        await dead.stop()


def _dead_for(records: list[Any], request_id: str) -> list[Any]:
    found = []
    for record in records:
        try:
            value = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict) and value.get("request_id") == request_id:
            found.append(record)
    return found


async def test_sigkill_mid_batch_leaves_every_request_with_exactly_one_decision(
    stack: Stack, services: dict[str, ServiceProcess]
) -> None:
    decisions = await TopicReader(stack.kafka_bootstrap, MESSAGES_DECISIONS).start()
    outbound = await TopicReader(stack.kafka_bootstrap, MESSAGES_OUTBOUND).start()
    dispatcher = services["dispatcher"]
    try:
        subjects = [unique_phone() for _ in range(300)]
        await produce(
            stack.kafka_bootstrap,
            CONSENT_EVENTS,
            [(s, consent_granted(s)) for s in subjects[::2]],  # half consented
        )
        requests = [send_request(s) for s in subjects for _ in range(5)]
        wanted = {r["request_id"] for r in requests}
        await produce(
            stack.kafka_bootstrap, MESSAGES_REQUESTS, [(r["recipient"], r) for r in requests]
        )
        await decisions.wait_for(lambda rs: len(_ids(rs, wanted)) > 100, timeout=60)
        dispatcher.stop(kill=True)
        dispatcher.start()
        dispatcher.wait_ready()
        await decisions.wait_for(lambda rs: len(_ids(rs, wanted)) == len(wanted), timeout=120)
        await asyncio.sleep(1)
        await decisions.poll()
        counted = _ids(decisions.records, wanted)
        assert set(counted.values()) == {1}, "a request decided twice"
        dispatched = {
            v["request_id"]
            for v in decisions.values()
            if v["request_id"] in wanted and v["decision"] == "dispatched"
        }
        assert len(dispatched) == 150 * 5
        await outbound.wait_for(lambda rs: len(_header_ids(rs, wanted)) == len(dispatched))
        await outbound.poll()
        sent = _header_ids(outbound.records, wanted)
        assert set(sent) == dispatched
        assert set(sent.values()) == {1}, "a message sent twice"
    finally:
        await decisions.stop()
        await outbound.stop()
