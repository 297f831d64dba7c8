"""Topic names of the public contract (CONTRACT.md section 1)."""

from typing import Final

WHATSAPP_INBOUND: Final = "whatsapp.inbound.v1"
CONSENT_EVENTS: Final = "consent.events.v1"
MESSAGE_REQUESTS: Final = "messages.requests.v1"
MESSAGES_OUTBOUND: Final = "messages.outbound.v1"
DISPATCH_DECISIONS: Final = "messages.decisions.v1"

# Topics a service of ours consumes; each gets a dead-letter companion
# (messages.outbound.v1 is consumed by the dispatcher's optional sender).
CONSUMED: Final = (WHATSAPP_INBOUND, CONSENT_EVENTS, MESSAGE_REQUESTS, MESSAGES_OUTBOUND)
ALL: Final = (
    WHATSAPP_INBOUND,
    CONSENT_EVENTS,
    MESSAGE_REQUESTS,
    MESSAGES_OUTBOUND,
    DISPATCH_DECISIONS,
)


def dlq(topic: str) -> str:
    return f"{topic}.dlq"
