"""The rebalance listener of the consume loop lets partitions change hands only
between batches."""

from typing import TYPE_CHECKING, Any

from aiokafka.abc import ConsumerRebalanceListener

if TYPE_CHECKING:
    from shared.kafka.batch_consumer import BatchConsumer


class BetweenBatches(ConsumerRebalanceListener):  # type: ignore[misc]
    """A partition is given up only once the batch in flight is done. Otherwise the
    consumer taking it over reads it from the offsets committed before that batch
    while the batch's effects are still being made durable: a handler that tells a
    redelivery by its recorded effects (the dispatcher's decision rows) would take
    them for one and publish them a second time."""

    def __init__(self, loop: "BatchConsumer", inner: ConsumerRebalanceListener | None) -> None:
        self.loop = loop
        self.inner = inner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.loop.in_flight:  # waits for the batch in flight, if any
            if self.loop.owned is not None:
                self.loop.owned -= set(revoked)
        if self.inner is not None:
            await self.inner.on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        async with self.loop.in_flight:
            self.loop.owned = (self.loop.owned or set()) | set(assigned)
        if self.inner is not None:
            await self.inner.on_partitions_assigned(assigned)
