"""Reading consent.events.v1 into subject states: up to the end offsets taken at
start, validated and folded as the projector does."""

import time
from collections.abc import AsyncIterator, Collection, Mapping
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from services.consent.rebuild.rebuilt import (
    CHUNK,
    RebuildRefusedError,
    Rebuilt,
    cyclic_gc_paused,
    progress_bar,
)
from shared.consent.state import LoggedEvent
from shared.contract.event_parsing import parse_consent_event
from shared.kafka.clients import end_offsets
from shared.phone import InvalidPhoneNumberError, normalize_phone
from shared.rejection import Rejected
from shared.topics import CONSENT_EVENTS

_STALL_S = 30.0  # no progress from the broker for this long: give up, don't hang


async def rebuild_states(
    bootstrap: str,
    *,
    topic: str = CONSENT_EVENTS,
    subjects: Collection[str] | None = None,
    from_offsets: Mapping[int, int] | None = None,
    keep_rejects_from: Mapping[int, int] | None = None,
    progress: bool = False,
) -> Rebuilt:
    """Fold the log up to its end offsets taken now. `subjects` limits the fold
    (records about others are skipped unvalidated); `from_offsets` starts there
    instead of the beginning, which is exact only for subjects with no earlier
    event; rejects at or past `keep_rejects_from` are kept for the DLQ."""
    scope = frozenset(normalize_phone(s) for s in subjects) if subjects is not None else None
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    try:
        await consumer.start()
        ends = await end_offsets(consumer, topic)
        rebuilt = Rebuilt("log", topic, ends, scope=scope)
        with cyclic_gc_paused():
            records = _records_until(consumer, topic, ends, from_offsets, progress)
            first = await _first_of_each_event(rebuilt, records, keep_rejects_from)
            rebuilt.events = sorted(first.values(), key=LoggedEvent.log_key)
            rebuilt.fold(rebuilt.events)
    finally:
        await consumer.stop()
    return rebuilt


async def _first_of_each_event(
    rebuilt: Rebuilt,
    records: AsyncIterator[ConsumerRecord],
    keep_rejects_from: Mapping[int, int] | None,
) -> dict[str, LoggedEvent]:
    """Validated and clamped, one per event_id as the events table keeps: the first in the log."""
    first: dict[str, LoggedEvent] = {}
    scope = rebuilt.scope
    async for record in records:
        rebuilt.records += 1
        if scope is not None and _subject_hint(record.value) not in scope:
            continue
        parsed = parse_consent_event(record.value)
        if isinstance(parsed, Rejected):
            rebuilt.rejected[parsed.reason] += 1
            if keep_rejects_from is not None and record.offset >= keep_rejects_from.get(
                record.partition, 0
            ):
                rebuilt.unseen_rejects.append((record, parsed))
            continue
        log_time = datetime.fromtimestamp(record.timestamp / 1000, UTC)
        logged = LoggedEvent.from_log(parsed, log_time, record.partition, record.offset)
        kept = first.get(parsed.event_id)
        if kept is None or logged.log_key() < kept.log_key():
            first[parsed.event_id] = logged
    return first


async def _records_until(
    consumer: AIOKafkaConsumer,
    topic: str,
    ends: Mapping[int, int],
    starts: Mapping[int, int] | None,
    progress: bool,
) -> AsyncIterator[ConsumerRecord]:
    tps = [TopicPartition(topic, p) for p in sorted(ends)]
    consumer.assign(tps)
    beginnings = await consumer.beginning_offsets(tps)
    for tp in tps:
        start = max(beginnings[tp], (starts or {}).get(tp.partition, 0))
        consumer.seek(tp, min(start, ends[tp.partition]))
    positions = {tp: await consumer.position(tp) for tp in tps}
    total = sum(max(0, ends[tp.partition] - positions[tp]) for tp in tps)
    remaining = {tp for tp in tps if positions[tp] < ends[tp.partition]}
    stalled_since = time.monotonic()
    with progress_bar(total, progress, "log") as bar:
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=500, max_records=CHUNK)
            for tp, records in fetched.items():
                for record in records:
                    if record.offset < ends[tp.partition]:
                        yield record
                bar.update(len(records))
            # The position also steps over transaction markers, which are never returned.
            before = len(remaining)
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp.partition]}
            if fetched or len(remaining) < before:
                stalled_since = time.monotonic()
            elif time.monotonic() - stalled_since > _STALL_S:
                raise RebuildRefusedError(f"no progress reading {topic} for {_STALL_S:.0f}s")


def _subject_hint(raw: bytes | None) -> str | None:
    """A cheap look at the subject, so a scoped rebuild validates only its own records."""
    try:
        body = orjson.loads(raw) if raw is not None else None
        subject = body.get("subject") if isinstance(body, dict) else None
        return normalize_phone(subject) if isinstance(subject, str) else None
    except (orjson.JSONDecodeError, InvalidPhoneNumberError):
        return None
