"""Names the topics of the public contract (CONTRACT.md section 1).

`KAFKA_TOPIC_PREFIX` (default empty, read once at start) puts a whole system on
its own copies of the topics: benchmarks and experiments beside a live system
on one broker, without reading or writing its records."""

import os
from typing import Final

PREFIX: Final = os.environ.get("KAFKA_TOPIC_PREFIX", "")

WHATSAPP_INBOUND: Final = PREFIX + "whatsapp.inbound.v1"
CONSENT_EVENTS: Final = PREFIX + "consent.events.v1"
MESSAGES_REQUESTS: Final = PREFIX + "messages.requests.v1"
MESSAGES_OUTBOUND: Final = PREFIX + "messages.outbound.v1"
MESSAGES_DECISIONS: Final = PREFIX + "messages.decisions.v1"
# The dispatcher's own: requests deferred by quiet hours, handed back to its gate
# when due (written and read by the dispatcher only).
MESSAGES_DEFERRED: Final = PREFIX + "messages.deferred.v1"

# The consent service's own ledgers (docs/erasure.md, section 3): every accepted
# event and every decision, personal fields sealed under the person's data key, so
# that deleting the key erases them. Never trimmed: the durable truth the rebuild
# and the audit read once the input topics' retention is bounded.
CONSENT_LEDGER: Final = PREFIX + "consent.ledger.v1"
DECISIONS_LEDGER: Final = PREFIX + "messages.decisions.ledger.v1"
LEDGERS: Final = (CONSENT_LEDGER, DECISIONS_LEDGER)

# Topics a service of ours consumes; each gets a dead-letter companion
# (messages.outbound.v1 is consumed by the dispatcher's optional sender).
CONSUMED: Final = (
    WHATSAPP_INBOUND,
    CONSENT_EVENTS,
    MESSAGES_REQUESTS,
    MESSAGES_OUTBOUND,
    MESSAGES_DEFERRED,
)
ALL: Final = (
    WHATSAPP_INBOUND,
    CONSENT_EVENTS,
    MESSAGES_REQUESTS,
    MESSAGES_OUTBOUND,
    MESSAGES_DECISIONS,
    MESSAGES_DEFERRED,
)


def dlq(topic: str) -> str:
    return f"{topic}.dlq"
