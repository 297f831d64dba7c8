"""WhatsApp Cloud API webhooks as Meta sends them: signed with the app secret
(X-Hub-Signature-256), and POSTed again, byte for byte, until answered 200."""

import asyncio
import time
from typing import Any

import httpx
import orjson

from chaos.history import Reply
from tests.support import webhooks


def text_webhook(wa_id: str, text: str, message_id: str, timestamp: int) -> dict[str, Any]:
    """One text message from `wa_id`, shaped as the tests' and benchmarks' webhooks."""
    return webhooks.text_webhook(wa_id, text, message_id, name="Chaos", timestamp=str(timestamp))


class WebhookSender:
    def __init__(self, inbound_url: str, secret: bytes) -> None:
        self.url = f"{inbound_url}/webhooks/whatsapp"
        self.secret = secret
        self.http = httpx.AsyncClient(timeout=10)

    async def close(self) -> None:
        await self.http.aclose()

    async def deliver(self, reply: Reply, give_up_after: float = 180.0) -> None:
        """Until a 200 (its time recorded), or until Meta would give up here."""
        raw = orjson.dumps(
            text_webhook(
                reply.subject.lstrip("+"), reply.text, reply.message_id, int(reply.first_sent_at)
            )
        )
        headers = webhooks.signature_headers(raw, self.secret)
        deadline = time.monotonic() + give_up_after
        attempt = 0
        while True:
            try:
                response = await self.http.post(self.url, content=raw, headers=headers)
                status = str(response.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            reply.statuses.append(status)
            if status == "200":
                reply.acked_at = time.time()
                return
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(min(2.0, 0.2 * 2**attempt))
            attempt += 1
