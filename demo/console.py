"""The demo's I/O, apart from its story (`demo.story`): printing the
steps, watching Kafka topics from their end offsets, reading records, plain HTTP
and the WhatsApp webhook body; as another system would, with nothing imported
from the services' internals."""

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from shared.kafka.clients import assign_from_end
from shared.kafka.security import security_options

WAIT_S = 30.0


class StepFailedError(Exception):
    """A step of the story did not happen as expected."""


def say(text: str = "") -> None:
    print(text, flush=True)


def step(number: int, title: str) -> None:
    say(f"\n── {number}. {title} " + "─" * max(0, 60 - len(title)))


def show(label: str, value: Any) -> None:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2)
    say(f"   {label}: " + text.replace("\n", "\n   "))


class Watcher:
    """Reads a topic from the end offsets taken at creation (read_committed)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
            **security_options(),
        )
        self.records: list[ConsumerRecord] = []

    async def start(self) -> "Watcher":
        await self.consumer.start()
        await assign_from_end(self.consumer, self.topic)
        return self

    async def first(
        self, matches: Callable[[ConsumerRecord], bool], what: str, timeout: float = WAIT_S
    ) -> ConsumerRecord:
        deadline = time.monotonic() + timeout
        while True:
            found = next((r for r in self.records if matches(r)), None)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise StepFailedError(f"no {what} on {self.topic} within {timeout:.0f}s")
            for batch in (await self.consumer.getmany(timeout_ms=200)).values():
                self.records.extend(batch)


def value(record: ConsumerRecord) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(record.value)
    return parsed


def header(record: ConsumerRecord, name: str) -> str | None:
    for key, raw in record.headers or ():
        if key == name:
            return bytes(raw).decode()
    return None


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def webhook_body(wa_id: str, text: str) -> dict[str, Any]:
    """What Meta POSTs when the user replies (WhatsApp Cloud API webhook)."""
    message = {
        "from": wa_id,
        "id": f"wamid.demo{uuid.uuid4().hex}",
        "timestamp": str(int(time.time())),
        "type": "text",
        "text": {"body": text},
    }
    value_ = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Demo user"}, "wa_id": wa_id}],
        "messages": [message],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value_}]}],
    }


def ready(urls: dict[str, str]) -> list[str]:
    down = []
    for name, url in urls.items():
        try:
            status, _ = http("GET", f"{url}/readyz")
        except OSError:
            status = 0
        if status != 200:
            down.append(f"{name} ({url})")
    return down
