"""Checks and opens one ledger for the audit (docs/audit.md, "From the ledgers"):
every partition's chain first, in offset order and with no key, then every entry
with its data key, read in batches.

An entry whose key is gone is an erased subject: counted, its pseudonym kept (so that
what else is about its person is set aside too), never judged. So is one of a
suppressed identifier that does not open: its key was deleted by the erasure, and
the identifier got a new one since (an event or a request about them after it). A
link that does not follow, a record that is no entry, and any other entry that does
not open with the key that is there are faults: the audit can no longer prove that
part of the past."""

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from services.audit.findings import LedgerFindingKind
from services.audit.history import LedgerFault, LedgerRead, PartitionChain
from shared.erasure.data_keys import DataKey, Erased
from shared.erasure.field_cipher import UnreadableFieldError
from shared.erasure.key_cache import CachedDataKeys
from shared.kafka.log_order import broker_time
from shared.ledger.entries import GENESIS, Kind, LedgerEntry, check_chain, open_entry

# Pseudonyms per read of the key table: one statement each, and at most this many
# unwrapped keys held at once beyond the cache.
KEY_BATCH = 10_000
# Breaks reported per partition: past that many, the partition was rewritten, and
# more findings would only bury the others.
_MAX_BREAKS = 100

# An entry where the ledger holds it: partition and offset (the entry's own fields say
# where its source record is, which a moved entry no longer matches).
Placed = tuple[int, int, LedgerEntry]

_BROKEN = LedgerFindingKind.LEDGER_CHAIN_BROKEN
_UNREADABLE = LedgerFindingKind.LEDGER_ENTRY_UNREADABLE


@dataclass(frozen=True, slots=True)
class Stored:
    """A record of a ledger partition: its offset, its own broker time, and the entry it
    holds (None: it holds none, which breaks the chain there)."""

    offset: int
    log_time: datetime
    entry: LedgerEntry | None


def stored(record: ConsumerRecord) -> Stored:
    try:
        entry = None if record.value is None else LedgerEntry.model_validate_json(record.value)
    except ValidationError:
        entry = None
    return Stored(record.offset, broker_time(record), entry)


@dataclass
class OpenedLedger:
    read: LedgerRead
    contents: list[tuple[LedgerEntry, bytes]]
    # Of each erased entry, the pseudonym whose key is gone. Not the others it names: a
    # previous number may belong to someone else now, and consent.suppression lists
    # every identifier an erasure took.
    erased: set[str]
    faults: list[LedgerFault]


@dataclass
class _Opening:
    ledger: str
    kind: Kind
    suppressed: Collection[str]
    contents: list[tuple[LedgerEntry, bytes]] = field(default_factory=list)
    erased_entries: int = 0
    erased: set[str] = field(default_factory=set)
    faults: list[LedgerFault] = field(default_factory=list)

    def fault(self, kind: LedgerFindingKind, at: Placed, why: str) -> None:
        partition, offset, entry = at
        self.faults.append(LedgerFault(kind, self.ledger, partition, offset, entry.log_time, why))


async def open_ledger(
    ledger: str,
    kind: Kind,
    partitions: Mapping[int, Sequence[Stored]],
    keys: CachedDataKeys,
    suppressed: Collection[str] = frozenset(),
) -> OpenedLedger:
    """Checks and opens the records of `ledger` (each partition's in offset order),
    whose entries must all be of `kind`; `suppressed`: consent.suppression's
    pseudonyms."""
    opening = _Opening(ledger, kind, suppressed)
    chains = {str(p): _chain(ledger, p, partitions[p], opening.faults) for p in sorted(partitions)}
    entries = [
        (p, s.offset, s.entry)
        for p in sorted(partitions)
        for s in partitions[p]
        if s.entry is not None
    ]
    for batch in _batches([e for e in entries if _usable(opening, e)]):
        found = await keys.for_reading({entry.pseudonyms[0] for _, _, entry in batch})
        for placed in batch:
            _open(opening, placed, found)
    total = sum(len(stored) for stored in partitions.values())
    read = LedgerRead(
        ledger=ledger,
        entries=total,
        opened=len(opening.contents),
        erased=opening.erased_entries,
        unreadable=total - len(opening.contents) - opening.erased_entries,
        partitions=chains,
    )
    return OpenedLedger(read, opening.contents, opening.erased, opening.faults)


def _chain(
    ledger: str, partition: int, records: Sequence[Stored], faults: list[LedgerFault]
) -> PartitionChain:
    breaks = []
    for s in records:
        if s.entry is None:
            breaks.append(s.offset)
            faults.append(
                LedgerFault(_BROKEN, ledger, partition, s.offset, s.log_time, "no ledger entry")
            )
    chained = [(s.offset, s.entry) for s in records if s.entry is not None]
    for offset, entry in _breaks(chained):
        breaks.append(offset)
        why = "the link does not follow: an entry was altered, removed, inserted or moved"
        faults.append(LedgerFault(_BROKEN, ledger, partition, offset, entry.log_time, why))
    return PartitionChain(entries=len(records), intact=not breaks, breaks=sorted(breaks))


def _breaks(chained: list[tuple[int, LedgerEntry]]) -> Iterator[tuple[int, LedgerEntry]]:
    """Yields each entry whose link does not follow, checking on from its own link: one
    entry altered is one break, and what follows it is still proved."""
    start, previous = 0, GENESIS
    for _ in range(_MAX_BREAKS):
        checked = check_chain(chained[start:], previous)
        if checked.intact:
            return
        start += checked.entries
        yield chained[start]
        previous = chained[start][1].chain
        start += 1


def _usable(opening: _Opening, placed: Placed) -> bool:
    entry = placed[2]
    if entry.kind != opening.kind:
        opening.fault(_UNREADABLE, placed, f"a {entry.kind} entry in {opening.ledger}")
    elif not entry.pseudonyms:
        opening.fault(_UNREADABLE, placed, "the entry names no pseudonym to open it with")
    else:
        return True
    return False


def _open(opening: _Opening, placed: Placed, keys: Mapping[str, DataKey | Erased]) -> None:
    entry = placed[2]
    try:
        content: bytes | Erased = open_entry(entry, keys)
    except UnreadableFieldError as exc:
        if entry.pseudonyms[0] not in opening.suppressed:
            why = f"does not open with its data key ({exc}): the entry or the key table was altered"
            opening.fault(_UNREADABLE, placed, why)
            return
        content = Erased(entry.pseudonyms[0])
    if isinstance(content, Erased):
        opening.erased_entries += 1
        opening.erased.add(content.pseudonym)
    else:
        opening.contents.append((entry, content))


def _batches(entries: list[Placed]) -> Iterator[list[Placed]]:
    for start in range(0, len(entries), KEY_BATCH):
        yield entries[start : start + KEY_BATCH]
