"""A FastStream broker in memory: records what a service publishes through
`broker.publish`, so that its entrypoints are tested without Kafka."""

from dataclasses import dataclass, field

# What a real broker's error might carry: never to be shown to a caller.
BROKER_SECRET = "SASL password hunter2 at kafka-internal.corp:9093"


@dataclass
class Published:
    value: bytes
    topic: str
    key: bytes | None
    headers: dict[str, str] | None


@dataclass
class FakeBroker:
    """Records what is published; `failing_topics` raise as a broker down would."""

    failing_topics: set[str] = field(default_factory=set)
    sent: list[Published] = field(default_factory=list)

    async def publish(
        self,
        message: bytes,
        topic: str,
        *,
        key: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if topic in self.failing_topics:
            raise ConnectionError(BROKER_SECRET)
        self.sent.append(Published(message, topic, key, headers))

    def on(self, topic: str) -> list[Published]:
        return [p for p in self.sent if p.topic == topic]
