"""Drives the running system as Meta and another system would: signed webhooks shaped as
WhatsApp sends them in 2026, grants and send requests on the topics, and the consent
API and the decisions topic read back."""

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from shared.topics import CONSENT_EVENTS, MESSAGES_DECISIONS, MESSAGES_OUTBOUND, MESSAGES_REQUESTS
from tests.support.eventually import eventually
from tests.support.kafka import TopicReader, produce
from tests.support.records import ISSUED, consent_granted, send_request
from tests.support.services import ServiceProcess
from tests.support.stack import Stack
from tests.support.webhooks import signed, webhook_body


def user_id() -> str:
    """A fresh WhatsApp user id (BSUID); the services' logs must never hold it whole."""
    issued = f"RU.{uuid.uuid4().int % 10**20:020d}"
    ISSUED.add(issued)
    return issued


def _now() -> str:
    return str(int(time.time()))


def message_from(text: str, *, phone: str | None, bsuid: str | None, **extra: Any) -> dict:
    """A text message as Meta sends it: `from`/`wa_id` only when it may share the number."""
    contact: dict[str, Any] = {"profile": {"name": "Test"}}
    message: dict[str, Any] = {
        "id": f"wamid.{uuid.uuid4().hex}",
        "timestamp": _now(),
        "type": "text",
        "text": {"body": text},
        **extra,
    }
    if phone is not None:
        contact["wa_id"] = message["from"] = phone[1:]
    if bsuid is not None:
        contact["user_id"] = message["from_user_id"] = bsuid
    return webhook_body({"contacts": [contact], "messages": [message]})


def delivered(phone: str, bsuid: str) -> dict:
    """The status webhooks of a message we sent: sent, delivered, read."""
    statuses = [
        {
            "id": f"wamid.{uuid.uuid4().hex}",
            "status": status,
            "timestamp": _now(),
            "recipient_id": phone[1:],
            "recipient_user_id": bsuid,
        }
        for status in ("sent", "delivered", "read")
    ]
    return webhook_body({"statuses": statuses})


def changed_number(old: str, new: str, old_bsuid: str, new_bsuid: str) -> dict:
    return webhook_body(
        {
            "messages": [
                {
                    "from": old[1:],
                    "id": f"wamid.{uuid.uuid4().hex}",
                    "timestamp": _now(),
                    "type": "system",
                    "system": {
                        "body": f"User Test changed from {old[1:]} to {new[1:]}",
                        "wa_id": new[1:],
                        "type": "user_changed_number",
                        "user_id": new_bsuid,
                        "previous_user_id": old_bsuid,
                    },
                }
            ]
        }
    )


def preference(phone: str, value: str) -> dict:
    """The user stopped or resumed marketing messages in WhatsApp itself."""
    return webhook_body(
        {
            "contacts": [{"profile": {"name": "Test"}, "wa_id": phone[1:]}],
            "user_preferences": [
                {
                    "wa_id": phone[1:],
                    "detail": f"User requested to {value} marketing messages",
                    "category": "marketing_messages",
                    "value": value,
                    "timestamp": _now(),
                }
            ],
        }
    )


def failed(phone: str, code: int) -> dict:
    """A status webhook: a message we sent to `phone` failed with Meta's `code`."""
    return webhook_body(
        {
            "statuses": [
                {
                    "id": f"wamid.{uuid.uuid4().hex}",
                    "status": "failed",
                    "timestamp": _now(),
                    "recipient_id": phone[1:],
                    "errors": [{"code": code, "title": f"error {code}"}],
                }
            ]
        }
    )


class World:
    """Drives the running system as Meta and another system would."""

    def __init__(self, stack: Stack, services: dict[str, ServiceProcess]) -> None:
        self.stack = stack
        self.inbound = services["inbound"].url
        self.consent = services["consent"].url
        self.decisions = TopicReader(stack.kafka_bootstrap, MESSAGES_DECISIONS)
        self.outbound = TopicReader(stack.kafka_bootstrap, MESSAGES_OUTBOUND)

    async def post(self, body: dict[str, Any]) -> None:
        raw, headers = signed(body)
        async with httpx.AsyncClient(base_url=self.inbound) as http:
            answer = await http.post("/webhooks/whatsapp", content=raw, headers=headers)
        assert answer.status_code == 200, answer.text

    async def state(self, identifier: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.consent) as http:
            answer = await http.get(f"/v1/subjects/{identifier}/consent")
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    async def until(self, identifier: str, status: str, *linked: str) -> dict[str, Any]:
        def done(state: dict[str, Any]) -> bool:
            return state["status"] == status and set(linked) <= set(state["identifiers"])

        return await eventually(lambda: self.state(identifier), done, timeout=30)

    async def until_state(
        self, identifier: str, done: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        return await eventually(lambda: self.state(identifier), done, timeout=30)

    async def grant(self, identifier: str, *purposes: str) -> None:
        grant = consent_granted(identifier, *(purposes or ("event_reminder",)))
        await produce(self.stack.kafka_bootstrap, CONSENT_EVENTS, [(identifier, grant)])
        await self.until(identifier, "opted_in")

    async def decide(
        self, *recipients: str, purpose: str = "event_reminder"
    ) -> list[dict[str, Any]]:
        """Asks to send to each recipient; returns their decisions, in that order."""
        asked = [send_request(r, purpose) for r in recipients]
        await produce(
            self.stack.kafka_bootstrap, MESSAGES_REQUESTS, [(r["recipient"], r) for r in asked]
        )
        ids = [r["request_id"] for r in asked]
        await self.decisions.wait_for(lambda _: set(ids) <= set(self._decided()))
        decided = self._decided()
        return [decided[i] for i in ids]

    def _decided(self) -> dict[str, dict[str, Any]]:
        return {
            v["request_id"]: v for v in map(orjson.loads, (r.value for r in self.decisions.records))
        }


def reasons(decisions: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["decision"], d["reason"]) for d in decisions]
