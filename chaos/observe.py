"""Reading the outcome from the outside: every topic from the beginning with a
read_committed consumer, the consent API for each subject that replied, and the
rebuild's and the audit's exit codes."""

import asyncio
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import httpx
import orjson
from aiokafka import ConsumerRecord, TopicPartition

from chaos.history import History
from chaos.observed import DeadLetter, LoggedDecision, Observed, ReplyEvent
from chaos.stack import ChaosStack
from chaos.tails import LiveTails
from shared.kafka.range_reader import range_consumer, read_ranges, whole_topic
from shared.topics import (
    CONSENT_EVENTS,
    CONSUMED,
    MESSAGES_DECISIONS,
    MESSAGES_OUTBOUND,
    MESSAGES_REQUESTS,
    dlq,
)


async def read_topics(bootstrap: str, topics: Iterable[str]) -> dict[str, list[ConsumerRecord]]:
    """Every committed record of `topics`, from the beginning to the end offsets
    taken when reading starts."""
    consumer = range_consumer(bootstrap)
    await consumer.start()
    try:
        ranges: dict[TopicPartition, tuple[int, int]] = {}
        for topic in topics:
            ranges |= await whole_topic(consumer, topic)
        records: dict[str, list[ConsumerRecord]] = {tp.topic: [] for tp in ranges}
        async with asyncio.timeout(300):
            async for batch in read_ranges(consumer, ranges, max_records=10_000):
                records[batch[0].topic] += batch
        return records
    finally:
        await consumer.stop()


def _json(value: bytes | None) -> Any:
    try:
        return orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None


def _headers(record: ConsumerRecord) -> dict[str, str]:
    return {k: v.decode(errors="replace") for k, v in record.headers or ()}


def _decision(body: Any) -> LoggedDecision | None:
    if not isinstance(body, dict) or not isinstance(body.get("request_id"), str):
        return None
    return LoggedDecision(
        request_id=body["request_id"],
        recipient=body.get("recipient"),
        purpose=body.get("purpose"),
        decision=str(body.get("decision")),
        reason=str(body.get("reason")),
        decided_at=datetime.fromisoformat(body["decided_at"]).timestamp(),
        opt_out_event_id=body.get("opt_out_event_id"),
        fence=_fence(body.get("fence")),
    )


def _fence(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(p): o for p, o in value.items() if isinstance(o, int)}


def _reply_event(record: ConsumerRecord, tails: LiveTails, read_at: float) -> ReplyEvent | None:
    body = _json(record.value)
    if not isinstance(body, dict) or body.get("type") not in ("OptedOut", "OptedIn"):
        return None
    evidence = body.get("evidence")
    message_id = evidence.get("message_id") if isinstance(evidence, dict) else None
    if not isinstance(message_id, str):
        return None
    return ReplyEvent(
        message_id=message_id,
        type=body["type"],
        subject=str(body.get("subject")),
        event_id=str(body.get("event_id")),
        appended_at=record.timestamp / 1000,
        # Not seen live (the watcher missed it): the latest it can have been visible.
        visible_at=tails.reply_seen.get(message_id, read_at),
        partition=record.partition,
        offset=record.offset,
    )


def _dead_letter(record: ConsumerRecord) -> DeadLetter | None:
    headers = _headers(record)
    try:
        source = (
            headers["source.topic"],
            int(headers["source.partition"]),
            int(headers["source.offset"]),
        )
    except (KeyError, ValueError):
        return None
    return DeadLetter(record.topic, source, headers.get("error.reason") or None)


async def read_log(bootstrap: str, tails: LiveTails, observed: Observed, read_at: float) -> None:
    dlqs = [dlq(topic) for topic in CONSUMED]
    topics = [CONSENT_EVENTS, MESSAGES_REQUESTS, MESSAGES_DECISIONS, MESSAGES_OUTBOUND, *dlqs]
    records = await read_topics(bootstrap, topics)
    for record in records[MESSAGES_DECISIONS]:
        if (decision := _decision(_json(record.value))) is not None:
            observed.decisions.append(decision)
    for record in records[MESSAGES_OUTBOUND]:
        observed.outbound[_headers(record).get("request_id", "(no request_id header)")] += 1
    for record in records[CONSENT_EVENTS]:
        if (event := _reply_event(record, tails, read_at)) is not None:
            observed.reply_events.setdefault(event.message_id, event)
    for record in records[MESSAGES_REQUESTS]:
        body = _json(record.value)
        request_id = body.get("request_id") if isinstance(body, dict) else None
        if isinstance(request_id, str) and 1 <= len(request_id) <= 128:
            observed.requests_in_log.add(request_id)
    for topic in dlqs:
        for record in records[topic]:
            if (letter := _dead_letter(record)) is not None:
                observed.dead_letters.append(letter)


async def read_consent(consent_url: str, subjects: Iterable[str], observed: Observed) -> None:
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=consent_url, timeout=10) as http:

        async def one(subject: str) -> None:
            async with limit:
                for _ in range(5):
                    try:
                        response = await http.get(f"/v1/subjects/{subject}/consent")
                        observed.consent_status[subject] = str(response.json()["status"])
                        return
                    except (httpx.HTTPError, KeyError, ValueError):
                        await asyncio.sleep(1)

        await asyncio.gather(*(one(s) for s in sorted(set(subjects))))


async def observe(
    stack: ChaosStack, consent_url: str, history: History, tails: LiveTails, observed: Observed
) -> None:
    """The rebuild's verify first: it waits until the projection has reached the
    log's end, so the consent API is read on a projection that has caught up."""
    rebuild = await stack.python(
        "services.consent.rebuild", "--verify", "--timeout", "120", log_name="rebuild", timeout=300
    )
    observed.rebuild = rebuild.result()
    await read_consent(consent_url, (r.subject for r in history.replies), observed)
    audit = await stack.python(
        "services.audit",
        "--no-progress",
        "--out",
        str(stack.log_dir / "audit-report"),
        "--bootstrap",
        stack.bootstrap,
        log_name="audit",
        timeout=600,
    )
    observed.audit = audit.result()
    await read_log(stack.bootstrap, tails, observed, read_at=time.time())
