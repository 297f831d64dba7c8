"""Calls the WhatsApp Cloud API's messages endpoint over httpx: one POST, one Attempt."""

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import orjson
from pydantic import SecretStr

from services.dispatcher import metrics
from services.dispatcher.sender.retry_policy import (
    AnswerClass,
    classify,
    graph_error,
    graph_error_code,
    provider_message_id,
    retry_after_seconds,
)


@dataclass(frozen=True)
class Attempt:
    status: int | None
    message_id: str | None = None
    retry_after: float | None = None
    error: str | None = None
    error_code: str | None = None  # the Cloud API's `error.code` of a refused call


class GraphApi:
    """Wraps the Cloud API's messages endpoint; the only place the token is used."""

    def __init__(
        self,
        base_url: str,
        version: str,
        phone_number_id: str,
        access_token: SecretStr,
        timeout_seconds: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.path = f"/{version}/{phone_number_id}/messages"
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {access_token.get_secret_value()}"},
            timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 5.0)),
            transport=transport,
        )

    async def post(self, body: bytes) -> Attempt:
        started = time.perf_counter()
        try:
            response = await self.client.post(
                self.path, content=body, headers={"Content-Type": "application/json"}
            )
        except httpx.TransportError as exc:
            elapsed = time.perf_counter() - started
            metrics.SENDER_REQUEST_SECONDS.labels("transport_error").observe(elapsed)
            return Attempt(None, error=f"{type(exc).__name__}: {exc}")
        metrics.SENDER_REQUEST_SECONDS.labels(f"{response.status_code // 100}xx").observe(
            time.perf_counter() - started
        )
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            payload = None
        retry_after = retry_after_seconds(response.headers.get("Retry-After"), datetime.now(UTC))
        if classify(response.status_code) is AnswerClass.SENT:
            return Attempt(response.status_code, message_id=provider_message_id(payload))
        error = graph_error(response.status_code, payload, response.text)
        return Attempt(
            response.status_code,
            retry_after=retry_after,
            error=error,
            error_code=graph_error_code(payload),
        )

    async def aclose(self) -> None:
        await self.client.aclose()
