"""Watching the log while the run goes on: when each reply's OptedOut/OptedIn and
each request's decision first became visible to a read_committed reader, and
which request_ids were asked for (no group: nothing the services do is changed
by it)."""

import asyncio
import time
from types import TracebackType
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from shared.kafka.clients import end_offsets
from shared.kafka.security import security_options
from shared.topics import CONSENT_EVENTS, MESSAGES_DECISIONS, MESSAGES_REQUESTS


def _json(value: bytes | None) -> Any:
    try:
        return orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None  # a hostile record: not what is watched for


class LiveTails:
    def __init__(self, bootstrap: str) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **security_options(),
        )
        # A record is visible once its offset is below the last stable offset, i.e.
        # replicated to every in-sync replica: what "acknowledged" means to acks=all.
        self.reply_seen: dict[str, float] = {}  # WhatsApp message id -> first seen
        self.decided: dict[str, float] = {}  # request_id -> first seen
        self.requested: set[str] = set()  # request_ids on messages.requests.v1
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "LiveTails":
        await self.consumer.start()
        partitions = []
        for topic in (CONSENT_EVENTS, MESSAGES_DECISIONS, MESSAGES_REQUESTS):
            ends = await end_offsets(self.consumer, topic)
            partitions += [TopicPartition(topic, p) for p in sorted(ends)]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_beginning(*partitions)
        self._task = asyncio.create_task(self._read(), name="chaos-tails")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()

    async def _read(self) -> None:
        while True:
            try:
                fetched = await self.consumer.getmany(timeout_ms=100, max_records=5000)
            except KafkaError:
                await asyncio.sleep(0.5)  # a broker fault: the next fetch finds the new leader
                continue
            now = time.time()
            for tp, records in fetched.items():
                for record in records:
                    self._note(tp.topic, _json(record.value), now)

    def _note(self, topic: str, body: Any, now: float) -> None:
        if not isinstance(body, dict):
            return
        request_id = body.get("request_id")
        if topic == MESSAGES_DECISIONS and isinstance(request_id, str):
            self.decided.setdefault(request_id, now)
            return
        if topic == MESSAGES_REQUESTS:
            if isinstance(request_id, str) and 1 <= len(request_id) <= 128:
                self.requested.add(request_id)
            return
        evidence = body.get("evidence")
        if body.get("type") in ("OptedOut", "OptedIn") and isinstance(evidence, dict):
            message_id = evidence.get("message_id")
            if isinstance(message_id, str):
                self.reply_seen.setdefault(message_id, now)

    async def decision_of(self, request_id: str, timeout: float) -> float | None:
        """When the request's decision was first seen, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        while request_id not in self.decided:
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.05)
        return self.decided[request_id]
