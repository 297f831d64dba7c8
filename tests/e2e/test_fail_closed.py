"""When the consent state cannot be read fresh, the dispatcher decides nothing,
says so, and resumes by itself (ARCHITECTURE.md section 3: fail closed)."""

import asyncio
import os
import signal

import httpx
import orjson
import pytest

from shared.topics import CONSENT_EVENTS, MESSAGES_DECISIONS, MESSAGES_REQUESTS
from tests.support.kafka import TopicReader, produce
from tests.support.records import consent_granted, send_request
from tests.support.services import ServiceProcess
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


def _decided(records: list[object], request_id: str) -> list[dict[str, object]]:
    values = [orjson.loads(r.value) for r in records]  # type: ignore[attr-defined]
    return [v for v in values if v["request_id"] == request_id]


async def test_a_stalled_projection_stops_every_decision_until_it_catches_up(
    stack: Stack, services: dict[str, ServiceProcess], phone: str
) -> None:
    consent, dispatcher = services["consent"], services["dispatcher"]
    assert consent.process is not None
    decisions = await TopicReader(stack.kafka_bootstrap, MESSAGES_DECISIONS).start()
    os.kill(consent.process.pid, signal.SIGSTOP)
    try:
        await produce(stack.kafka_bootstrap, CONSENT_EVENTS, [(phone, consent_granted(phone))])
        request = send_request(phone)
        await produce(stack.kafka_bootstrap, MESSAGES_REQUESTS, [(phone, request)])
        # Past the fence timeout (10 s by default) the dispatcher reports it.
        await asyncio.sleep(12)
        await decisions.poll()
        assert _decided(decisions.records, request["request_id"]) == []
        async with httpx.AsyncClient(base_url=dispatcher.url) as http:
            ready = await http.get("/readyz")
            metrics = (await http.get("/metrics")).text
        assert ready.status_code == 503
        assert ready.json()["checks"]["deciding"] is False
        assert "dispatcher_fail_closed 1.0" in metrics
    finally:
        os.kill(consent.process.pid, signal.SIGCONT)
    try:
        await decisions.wait_for(lambda rs: bool(_decided(rs, request["request_id"])), timeout=60)
        [decision] = _decided(decisions.records, request["request_id"])
        assert (decision["decision"], decision["reason"]) == ("dispatched", "consented")
        async with httpx.AsyncClient(base_url=dispatcher.url) as http:
            assert (await http.get("/readyz")).status_code == 200
    finally:
        await decisions.stop()
