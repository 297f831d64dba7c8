"""Builds the WhatsApp Cloud API send body that goes to messages.outbound.v1."""

from typing import Any

from shared.contract.requests import SendRequest
from shared.phone import wa_id


def cloud_api_body(request: SendRequest) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": wa_id(request.recipient),
        **request.message,
    }
