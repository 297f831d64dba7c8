"""Serves POST/GET /webhooks/whatsapp: verifies, then makes the body durable on
whatsapp.inbound.v1."""

import hashlib
import hmac
from typing import Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from faststream.kafka import KafkaBroker

from services.inbound import metrics
from shared.topics import WHATSAPP_INBOUND


def signature_valid(secret: bytes, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256="))


def _refuse(status: int, reason: str, detail: str) -> JSONResponse:
    metrics.WEBHOOKS_REJECTED.labels(reason).inc()
    return JSONResponse({"reason": reason, "detail": detail}, status_code=status)


def _sender_key(body: Any) -> bytes | None:
    """The first message's sender keys the record (contract section 1)."""
    try:
        for entry in body.get("entry") or []:
            for change in entry.get("changes") or []:
                for message in (change.get("value") or {}).get("messages") or []:
                    sender = message.get("from")
                    if isinstance(sender, str) and sender:
                        return sender.encode()
    except AttributeError:
        return None
    return None


def webhook_router(
    broker: KafkaBroker, app_secret: bytes, verify_token: str, max_body_bytes: int
) -> APIRouter:
    router = APIRouter(prefix="/webhooks/whatsapp", tags=["webhook"])

    @router.get("")
    async def verify(
        mode: str | None = Query(None, alias="hub.mode"),
        token: str | None = Query(None, alias="hub.verify_token"),
        challenge: str | None = Query(None, alias="hub.challenge"),
    ) -> Response:
        if (
            mode == "subscribe"
            and token is not None
            and challenge is not None
            and (hmac.compare_digest(token.encode(), verify_token.encode()))
        ):
            return PlainTextResponse(challenge)
        return PlainTextResponse("verification failed", status_code=403)

    @router.post("")
    async def receive(request: Request) -> Response:
        metrics.WEBHOOKS_RECEIVED.inc()
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body_bytes:
            return _refuse(413, "too_large", f"body over {max_body_bytes} bytes")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > max_body_bytes:
                return _refuse(413, "too_large", f"body over {max_body_bytes} bytes")
        body = bytes(raw)
        # The signature covers the raw bytes: verify before parsing anything.
        if not signature_valid(app_secret, body, request.headers.get("x-hub-signature-256")):
            return _refuse(401, "bad_signature", "X-Hub-Signature-256 missing or wrong")
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _refuse(400, "invalid_json", "the body is not JSON")
        try:
            await broker.publish(body, WHATSAPP_INBOUND, key=_sender_key(parsed))
        except Exception as exc:  # any produce failure: Meta retries on 5xx
            return _refuse(503, "kafka_unavailable", f"could not make the body durable: {exc}")
        return JSONResponse({"status": "accepted"})

    return router
