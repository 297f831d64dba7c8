"""Reads consent.ledger.v1, the consent service's own sealed copy of the log, into
subject states (docs/erasure.md, section 3): the durable truth once the log's
retention is bounded (ERASURE_MODE). Entries whose key is gone are erased people's
past and are counted, never folded; the rest open into the very events the
projector accepted."""

from collections.abc import Mapping

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.consent.ledger.entries import logged_from
from services.consent.rebuild.rebuilt import (
    CHUNK,
    RebuildRefusedError,
    Rebuilt,
    cyclic_gc_paused,
    progress_bar,
)
from services.consent.suppressions import SuppressionList
from shared.consent.event_identity import event_id_of
from shared.consent.state import LoggedEvent
from shared.erasure.data_keys import DataKey, Erased
from shared.erasure.field_cipher import UnreadableFieldError
from shared.erasure.key_cache import CachedDataKeys
from shared.kafka.log_order import first_per_id
from shared.kafka.range_reader import range_consumer, read_ranges, whole_topic
from shared.kafka.security import security_options
from shared.ledger.entries import LedgerEntry, check_chain, open_entry
from shared.topics import CONSENT_EVENTS, CONSENT_LEDGER


async def rebuild_states_from_ledger(
    bootstrap: str,
    keys: CachedDataKeys,
    *,
    writer_group: str,
    ledger: str = CONSENT_LEDGER,
    topic: str = CONSENT_EVENTS,
    suppression: SuppressionList | None = None,
    progress: bool = False,
) -> Rebuilt:
    """Folds every entry of `ledger` up to its end offsets taken now. Its positions on
    `topic` are those the ledger writer (`writer_group`) committed with its last
    entries, so the projector goes on from where the ledger ends. Refuses a ledger
    whose chain is broken or whose entry does not open with its key."""
    positions = await _ledgered_positions(bootstrap, writer_group, topic)
    rebuilt = Rebuilt("ledger", topic, positions)
    entries = await _read(bootstrap, ledger, rebuilt, progress)
    with cyclic_gc_paused():
        found = await keys.for_reading({e.pseudonyms[0] for e in entries})
        erased = frozenset(suppression.by_pseudonym) if suppression is not None else frozenset()
        read: list[LoggedEvent] = []
        for entry in entries:
            content = _open(entry, found, erased)
            if isinstance(content, Erased):
                rebuilt.erased += 1
                continue
            read.append(logged_from(entry, content))
        rebuilt.events = list(first_per_id(read, event_id_of).values())
        suppressed = suppression.among(rebuilt.events) if suppression is not None else {}
        rebuilt.events = rebuilt.drop_erased(rebuilt.events, suppressed)
        rebuilt.fold(rebuilt.events, suppressed)
    return rebuilt


def _open(
    entry: LedgerEntry, keys: Mapping[str, DataKey | Erased], erased: frozenset[str]
) -> bytes | Erased:
    try:
        return open_entry(entry, keys)
    except UnreadableFieldError as exc:
        if entry.pseudonyms[0] in erased:
            # Sealed under the key its erasure deleted; a key made for the same
            # pseudonym by a writer racing the erasure does not open it, and need not.
            return Erased(entry.pseudonyms[0])
        raise RebuildRefusedError(
            f"ledger entry of {entry.record_id} does not open: {exc}; the ledger or the "
            "key table was altered"
        ) from exc


async def _read(bootstrap: str, ledger: str, rebuilt: Rebuilt, progress: bool) -> list[LedgerEntry]:
    consumer = range_consumer(bootstrap, auto_offset_reset="earliest")
    try:
        await consumer.start()
        ranges = await whole_topic(consumer, ledger)
        total = sum(stop - start for start, stop in ranges.values())
        by_partition: dict[int, list[tuple[int, LedgerEntry]]] = {}
        with progress_bar(total, progress, "ledger") as bar:
            async for records in read_ranges(
                consumer, ranges, max_records=CHUNK, progress=bar.update
            ):
                rebuilt.records += len(records)
                for r in records:
                    entry = LedgerEntry.model_validate_json(r.value)
                    by_partition.setdefault(r.partition, []).append((r.offset, entry))
    finally:
        await consumer.stop()
    for partition, chained in by_partition.items():
        checked = check_chain(chained)
        if not checked.intact:
            raise RebuildRefusedError(
                f"{ledger}[{partition}]: the chain breaks at offset {checked.broken_at}: "
                "an entry was altered, removed or inserted"
            )
    # Only what the writer committed its source offsets with: none past them.
    return [
        e
        for chained in by_partition.values()
        for _, e in chained
        if e.offset < rebuilt.positions.get(e.partition, 0)
    ]


async def _ledgered_positions(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security_options())
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    # Every partition of the log: one the writer never committed on is at 0.
    positions = {p["partition"]: 0 for p in described["partitions"]}
    for tp, meta in committed.items():
        if isinstance(tp, TopicPartition) and tp.topic == topic and meta.offset >= 0:
            positions[tp.partition] = meta.offset
    return positions
