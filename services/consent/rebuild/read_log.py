"""Reads consent.events.v1 into subject states: up to the end offsets taken at
start, validated and folded as the projector does."""

from collections.abc import AsyncIterator, Collection, Mapping

import orjson
from aiokafka import ConsumerRecord

from services.consent.rebuild.rebuilt import (
    CHUNK,
    RebuildRefusedError,
    Rebuilt,
    cyclic_gc_paused,
    progress_bar,
)
from services.consent.suppressions import SuppressionList
from shared.consent.authenticity import Trust
from shared.consent.event_identity import event_id_of
from shared.consent.logged_record import logged_event
from shared.consent.people import connected
from shared.consent.state import LoggedEvent
from shared.contract.events import IDENTITY_TYPES
from shared.identifiers import normalize_identifier
from shared.kafka.log_order import first_per_id
from shared.kafka.range_reader import (
    STALL_S,
    ReadStalledError,
    range_consumer,
    read_ranges,
    whole_topic,
)
from shared.phone import InvalidPhoneNumberError
from shared.rejection import Rejected
from shared.topics import CONSENT_EVENTS


async def rebuild_states(
    bootstrap: str,
    *,
    trust: Trust,
    topic: str = CONSENT_EVENTS,
    subjects: Collection[str] | None = None,
    from_offsets: Mapping[int, int] | None = None,
    keep_rejects_from: Mapping[int, int] | None = None,
    progress: bool = False,
    suppression: SuppressionList | None = None,
) -> Rebuilt:
    """Folds the log up to its end offsets taken now. `subjects` limits the fold
    (records about others are skipped unvalidated); `from_offsets` starts there
    instead of the beginning, which is exact only for subjects with no earlier
    event; rejects at or past `keep_rejects_from` are kept for the DLQ. With
    `suppression`, erased people's past is dropped and their states marked, as
    the projector does."""
    scope = frozenset(normalize_identifier(s) for s in subjects) if subjects is not None else None
    consumer = range_consumer(bootstrap, auto_offset_reset="earliest")
    try:
        await consumer.start()
        ranges = await whole_topic(consumer, topic, from_offsets)
        trimmed = {tp.partition: start for tp, (start, _) in ranges.items() if start > 0}
        if from_offsets is None and trimmed:
            # A STOP older than the retention would be missing from the fold and a
            # later grant would count: never fold a log that lost its beginning.
            raise RebuildRefusedError(
                f"{topic} no longer starts at offset 0 (first offsets {trimmed}): its "
                "retention trimmed it (ERASURE_MODE); rebuild --from ledger or --from table"
            )
        ends = {tp.partition: stop for tp, (_, stop) in ranges.items()}
        rebuilt = Rebuilt("log", topic, ends, scope=scope)
        total = sum(stop - start for start, stop in ranges.values())
        with cyclic_gc_paused(), progress_bar(total, progress, "log") as bar:
            batches = read_ranges(consumer, ranges, max_records=CHUNK, progress=bar.update)
            try:
                read = await _read_events(rebuilt, batches, keep_rejects_from, trust)
            except ReadStalledError as exc:
                raise RebuildRefusedError(
                    f"no progress reading {topic} for {STALL_S:.0f}s"
                ) from exc
            if scope is not None and (wider := connected(scope, read)) != scope:
                # Linked identifiers' histories are part of the scope's people: read
                # again with them (a link to a further one was kept on the first read).
                rebuilt.scope = wider
                rebuilt.records = 0
                rebuilt.rejected.clear()
                rebuilt.unseen_rejects.clear()
                batches = read_ranges(consumer, ranges, max_records=CHUNK, progress=bar.update)
                read = await _read_events(rebuilt, batches, keep_rejects_from, trust)
            # One per event_id as the events table keeps: the first in the log.
            rebuilt.events = list(first_per_id(read, event_id_of).values())
            del read  # the repeated records: not held while the rebuild is
            suppressed = suppression.among(rebuilt.events) if suppression is not None else {}
            rebuilt.events = rebuilt.drop_erased(rebuilt.events, suppressed)
            rebuilt.fold(rebuilt.events, suppressed)
    finally:
        await consumer.stop()
    return rebuilt


async def _read_events(
    rebuilt: Rebuilt,
    batches: AsyncIterator[list[ConsumerRecord]],
    keep_rejects_from: Mapping[int, int] | None,
    trust: Trust,
) -> list[LoggedEvent]:
    """Reads the events, validated and clamped; the rejects counted, and kept when at or
    past `keep_rejects_from`."""
    read: list[LoggedEvent] = []
    scope = rebuilt.scope
    async for records in batches:
        rebuilt.records += len(records)
        for record in records:
            if scope is not None and not _may_concern(record.value, scope):
                continue
            logged = logged_event(record, trust)
            if isinstance(logged, Rejected):
                rebuilt.rejected[logged.reason] += 1
                if keep_rejects_from is not None and record.offset >= keep_rejects_from.get(
                    record.partition, 0
                ):
                    rebuilt.unseen_rejects.append((record, logged))
                continue
            read.append(logged)
    return read


def _may_concern(raw: bytes | None, scope: frozenset[str]) -> bool:
    """Takes a cheap look at a record, so a scoped rebuild validates only its own
    records and the identity events that may widen its scope."""
    try:
        body = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        return False
    if not isinstance(body, dict):
        return False
    if body.get("type") in IDENTITY_TYPES:
        return True
    subject = body.get("subject")
    try:
        return isinstance(subject, str) and normalize_identifier(subject) in scope
    except InvalidPhoneNumberError:
        return False
