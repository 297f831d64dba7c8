from prometheus_client import Counter

WEBHOOKS_RECEIVED = Counter("inbound_webhooks_received_total", "Webhook POSTs received")
WEBHOOKS_REJECTED = Counter("inbound_webhooks_rejected_total", "Webhook POSTs refused", ["reason"])
REPLIES = Counter("inbound_replies_total", "Replies classified", ["kind", "language"])
DEAD_LETTERED = Counter("inbound_dead_lettered_total", "Records sent to the DLQ", ["reason"])
IDENTITY_EVENTS = Counter(
    "inbound_identity_events_total", "Identity events written (links, changes)", ["type"]
)
PLATFORM_EVENTS = Counter(
    "inbound_platform_events_total",
    "Events written from what WhatsApp reported of users (preferences, failed statuses)",
    ["type"],
)
