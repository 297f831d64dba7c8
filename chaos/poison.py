"""The hostile producer: records that no service can use (JSON nested 300 and 3000
levels deep, invalid UTF-8, wrong types, records near 1 MiB), a few now and then
for the whole run and all at once as a fault. Each acknowledged one is recorded
with its position: it must turn up in `<topic>.dlq`."""

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from chaos.history import History, PoisonRecord, RequestKind, SentRequest
from chaos.producer import RetryingProducer
from chaos.webhooks import text_webhook
from shared.topics import CONSENT_EVENTS, MESSAGES_REQUESTS, WHATSAPP_INBOUND

_DEEP = "__chaos_deep__"
NEAR_1_MIB = 900_000


@dataclass(frozen=True)
class Poison:
    name: str
    topic: str
    key: bytes | None
    value: bytes
    request_id: str | None = None  # a SendRequest that names one: invalid_request expected


def nested(levels: int) -> bytes:
    """JSON `levels` objects deep (orjson refuses to write past 254)."""
    return b'{"d":' * levels + b"1" + b"}" * levels


def _with_deep(body: Any, levels: int) -> bytes:
    """`body` as JSON with the placeholder string replaced by `nested(levels)`."""
    return orjson.dumps(body).replace(f'"{_DEEP}"'.encode(), nested(levels))


def _grant(subject: Any, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": "ConsentGranted",
        "subject": subject,
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "website_form",
        "purposes": ["event_reminder"],
        "evidence": {"registration_id": "R-hostile"},
        **fields,
    }


def _request(recipient: Any, **fields: Any) -> dict[str, Any]:
    return {
        "request_id": f"chaos-poison-{uuid.uuid4()}",
        "recipient": recipient,
        "purpose": "event_reminder",
        "message": {"type": "text", "text": {"body": "hostile"}},
        "requested_at": datetime.now(UTC).isoformat(),
        **fields,
    }


def _event(name: str, subject: str, value: bytes) -> Poison:
    return Poison(name, CONSENT_EVENTS, subject.encode(), value)


def _send(name: str, recipient: str, body: dict[str, Any], value: bytes | None = None) -> Poison:
    raw = value if value is not None else orjson.dumps(body)
    return Poison(name, MESSAGES_REQUESTS, recipient.encode(), raw, body["request_id"])


def _webhook(subject: str, levels: int) -> Poison:
    body = text_webhook(subject.lstrip("+"), "hello", f"wamid.hostile.{uuid.uuid4().hex}", 0)
    body["entry"][0]["changes"][0]["value"]["messages"][0]["context"] = _DEEP
    body["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(time.time()))
    return Poison(f"webhook_deep_{levels}", WHATSAPP_INBOUND, None, _with_deep(body, levels))


def poison_kinds(subject: str, recipient: str) -> list[Callable[[], Poison]]:
    """Each makes a fresh record (new ids). `subject` is used only by hostile events;
    `recipient` has consented, so a hostile request that is not refused is sent."""

    def deep_grant(levels: int) -> Callable[[], Poison]:
        def make() -> Poison:
            body = _grant(subject, evidence={"proof": _DEEP})
            return _event(f"grant_evidence_deep_{levels}", subject, _with_deep(body, levels))

        return make

    def deep_request(levels: int) -> Callable[[], Poison]:
        def make() -> Poison:
            message = {"type": "text", "text": {"body": "hostile"}, "context": _DEEP}
            body = _request(recipient, message=message)
            return _send(
                f"request_message_deep_{levels}", recipient, body, _with_deep(body, levels)
            )

        return make

    big = "x" * NEAR_1_MIB
    return [
        deep_grant(300),
        deep_grant(3000),
        lambda: _event(
            "grant_evidence_900kb", subject, orjson.dumps(_grant(subject, evidence={"blob": big}))
        ),
        deep_request(300),
        deep_request(3000),
        lambda: _send(
            "request_message_900kb",
            recipient,
            _request(recipient, message={"type": "text", "text": {"body": big}}),
        ),
        lambda: _webhook(subject, 300),
        lambda: _webhook(subject, 3000),
        lambda: _event(
            "grant_invalid_utf8", subject, b'{"type": "ConsentGranted", "x": "\xff\xfe"}'
        ),
        lambda: Poison(
            "request_invalid_utf8", MESSAGES_REQUESTS, None, b'{"recipient": "\xc3\x28"}'
        ),
        lambda: Poison(
            "webhook_invalid_utf8", WHATSAPP_INBOUND, None, b'{"entry": "\xed\xa0\x80"}'
        ),
        lambda: _event("grant_subject_int", subject, orjson.dumps(_grant(42))),
        lambda: _event("grant_purposes_str", subject, orjson.dumps(_grant(subject, purposes="x"))),
        lambda: _send("request_recipient_int", recipient, _request(42)),
    ]


class Hostile:
    def __init__(
        self,
        producer: RetryingProducer,
        history: History,
        rng: random.Random,
        subject: str,
        recipient: str,
    ) -> None:
        self.producer = producer
        self.history = history
        self.rng = rng
        self.kinds = poison_kinds(subject, recipient)
        self.recipient = recipient

    async def write(self, records: list[Poison]) -> None:
        for poison in records:
            if poison.request_id is not None:
                # Recorded as a request too: it must get exactly one decision.
                self.history.requests[poison.request_id] = SentRequest(
                    poison.request_id,
                    self.recipient,
                    "event_reminder",
                    time.time(),
                    RequestKind.POISON,
                    sends=1,
                )
            ack = await self.producer.send(poison.topic, poison.key, poison.value)
            if ack is None:
                continue
            if poison.request_id is not None:
                self.history.requests[poison.request_id].acked_at = ack.at
            self.history.poison.append(
                PoisonRecord(
                    poison.name, poison.topic, ack.partition, ack.offset, ack.at, poison.request_id
                )
            )

    async def burst(self) -> None:
        await self.write([make() for make in self.kinds])

    async def trickle(self, until: float, every: float = 20.0) -> None:
        """One hostile record at a time, now and then, whatever the faults do."""
        while True:
            pause = self.rng.uniform(every / 2, every * 1.5)
            await asyncio.sleep(max(0.0, min(pause, until - time.time())))
            if time.time() >= until:
                return
            await self.write([self.rng.choice(self.kinds)()])
