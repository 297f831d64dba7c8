"""WhatsApp Cloud API webhook bodies, signed as Meta signs them."""

import hashlib
import hmac
import time
import uuid
from typing import Any

import orjson

# The test stack's own (inbound refuses public or short ones).
APP_SECRET = b"test-app-secret-5f0c9d2e8b7a4c31a6e2"
VERIFY_TOKEN = "test-verify-token-8d41c7"


def webhook_body(value: dict[str, Any]) -> dict[str, Any]:
    """A webhook body with one change of field `messages` holding `value` beside the
    business number's metadata."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": "106540352242922",
                            },
                            **value,
                        },
                    }
                ],
            }
        ],
    }


def text_webhook(
    wa_id: str,
    text: str,
    message_id: str | None = None,
    *,
    name: str = "Test",
    timestamp: str | None = None,
) -> dict[str, Any]:
    """One text message from `wa_id`; a fresh message id and the current time
    unless given."""
    return webhook_body(
        {
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "messages": [
                {
                    "from": wa_id,
                    "id": message_id or f"wamid.{uuid.uuid4().hex}",
                    "timestamp": timestamp or str(int(time.time())),
                    "type": "text",
                    "text": {"body": text},
                }
            ],
        }
    )


def signature_headers(raw: bytes, secret: bytes = APP_SECRET) -> dict[str, str]:
    signature = hmac.new(secret, raw, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={signature}", "Content-Type": "application/json"}


def signed(body: dict[str, Any], secret: bytes = APP_SECRET) -> tuple[bytes, dict[str, str]]:
    raw = orjson.dumps(body)
    return raw, signature_headers(raw, secret)
