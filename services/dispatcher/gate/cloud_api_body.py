"""Builds the WhatsApp Cloud API send body that goes to messages.outbound.v1."""

from typing import Any

from shared.contract.requests import SendRequest
from shared.identifiers import is_bsuid
from shared.phone import wa_id


def cloud_api_body(request: SendRequest) -> dict[str, Any]:
    """Addresses a phone number with `to` (its wa_id digits) and a business-scoped
    user id with `recipient`, as the Cloud API takes each since May 2026."""
    recipient = request.recipient
    address = {"recipient": recipient} if is_bsuid(recipient) else {"to": wa_id(recipient)}
    # The message first: nothing in it may readdress the send.
    return {
        **request.message,
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        **address,
    }
