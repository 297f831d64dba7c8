"""Serves POST/GET /webhooks/whatsapp: verifies, then makes the body durable on
whatsapp.inbound.v1, or a signed body that is no webhook on its DLQ."""

import hmac

import structlog
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from faststream.kafka import KafkaBroker

from services.inbound import metrics
from services.inbound.meta_signature import RECORD_HEADER, signature_valid
from shared.contract.webhook import WebhookBody, parse_webhook
from shared.rejection import Rejected
from shared.topics import WHATSAPP_INBOUND, dlq

log = structlog.get_logger(__name__)

# The parser's codes that keep their name at the door; any other shape problem
# (a list, a number, `entry` of the wrong type) is simply not a webhook.
_OWN_REASONS = {"invalid_json": 400, "too_deep": 400, "too_large": 413}


def _refuse(status: int, reason: str, detail: str) -> JSONResponse:
    metrics.WEBHOOKS_REJECTED.labels(reason).inc()
    return JSONResponse({"reason": reason, "detail": detail}, status_code=status)


def _sender_key(body: WebhookBody) -> bytes | None:
    """Keys the record by the first message's sender (contract section 1)."""
    for entry in body.entry:
        for change in entry.changes:
            for message in change.value.messages if change.value else ():
                # Digits sent as a JSON number are the same sender as the string.
                if message.from_ not in (None, ""):
                    return str(message.from_).encode()
    return None


def _answer(rejected: Rejected) -> tuple[int, str, str]:
    """Gives the status, reason and detail a signed body that is no webhook is refused
    with; the parser's own words about invalid JSON quote orjson, so they stay in the DLQ."""
    if rejected.reason == "invalid_json":
        return 400, "invalid_json", "the body is not UTF-8 JSON"
    if rejected.reason in _OWN_REASONS:
        return _OWN_REASONS[rejected.reason], rejected.reason, rejected.detail[:300]
    return 400, "not_a_webhook", rejected.detail[:300]


def webhook_router(
    broker: KafkaBroker, app_secret: bytes, verify_token: str, max_body_bytes: int
) -> APIRouter:
    if not app_secret:
        # Refused at start rather than per request: with an empty key anyone could sign.
        raise ValueError("WHATSAPP_APP_SECRET is empty: no webhook could be authenticated")
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

    async def dead_letter(body: bytes, signature: str, rejected: Rejected) -> Response:
        status, reason, detail = _answer(rejected)
        # Never on the topic, so no partition or offset: the source is the endpoint.
        headers = {
            "error.reason": reason,
            "error.detail": rejected.detail[:1000],
            "source.topic": WHATSAPP_INBOUND,
            "source.endpoint": "POST /webhooks/whatsapp",
            RECORD_HEADER: signature,
        }
        try:
            await broker.publish(body, dlq(WHATSAPP_INBOUND), headers=headers)
        except Exception:  # any produce failure: on 5xx the sender retries, and the copy lands
            log.exception("could not dead-letter a signed webhook body", reason=reason)
            return _refuse(503, "kafka_unavailable", "could not keep a copy of the body")
        metrics.DEAD_LETTERED.labels(reason).inc()
        log.warning("signed webhook body dead-lettered", reason=reason, detail=rejected.detail)
        return _refuse(status, reason, detail)

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
        # The signature covers the raw bytes: verify before parsing anything, and only
        # a signed body may reach the DLQ, so nobody else can fill it.
        signature = request.headers.get("x-hub-signature-256")
        if signature is None or not signature_valid(app_secret, body, signature):
            return _refuse(401, "bad_signature", "X-Hub-Signature-256 missing, malformed or wrong")
        parsed = parse_webhook(body)
        if isinstance(parsed, Rejected):
            return await dead_letter(body, signature, parsed)
        # Meta's header travels with the body, as sent: under INBOUND_TOPIC_TRUST=meta_signed
        # the consumer believes only the records it signs (services/inbound/meta_signature.py).
        headers = {RECORD_HEADER: signature}
        try:
            await broker.publish(body, WHATSAPP_INBOUND, key=_sender_key(parsed), headers=headers)
        except Exception:  # any produce failure: Meta retries on 5xx
            log.exception("could not make a webhook body durable")
            return _refuse(503, "kafka_unavailable", "could not make the body durable")
        return JSONResponse({"status": "accepted"})

    return router
