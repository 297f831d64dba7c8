"""A ledger entry: one record of a source topic, its personal content sealed under the
data key of the person it is about, its non-personal facts in clear, and a hash
chain through every entry of its ledger partition (docs/erasure.md, section 3).

The content is the record as the consent service accepted it (the canonical event,
or the decision as published), sealed whole: readers open it and hand it to the
same code that reads the source topic, so the rebuild and the audit have one
path, not two. Deleting the person's data keys makes every entry about them
unreadable, in every copy of the ledger; the clear facts, the pseudonyms and the
chain stay, so the past is still proved intact and counted ("erased subject").

Pure: the keys and the chain's previous link come from the caller."""

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict

from shared.erasure.data_keys import DataKey, Erased
from shared.erasure.field_cipher import open_field, seal_field

Kind = Literal["event", "decision"]
# The clear facts: only what is not personal on its own (types, verdicts, purposes,
# times, flags). Never an identifier, an event_id (a producer may build one from a
# phone number), evidence, a time zone or a message.
Facts = Mapping[str, str | bool | None]

# The previous link of a partition's first entry.
GENESIS = "0" * 64
# What an entry seals when its person was erased before it was written (a record of
# theirs met late): nothing, its place and clear facts only.
NOTHING = "erased"


class LedgerEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1
    kind: Kind
    # Where the source record is: its partition (the ledger's own), offset and the
    # broker's timestamp of it.
    partition: int
    offset: int
    log_time: datetime
    facts: dict[str, str | bool | None]
    # HMAC-SHA256 pseudonyms of the identifiers the record names; the first one's
    # data key seals `sealed`.
    pseudonyms: tuple[str, ...]
    sealed: str
    # SHA-256 over the previous entry's chain and this entry's canonical bytes.
    chain: str

    @property
    def record_id(self) -> str:
        return record_id(self.kind, self.partition, self.offset)

    def unchained_bytes(self) -> bytes:
        return _canonical(self.model_dump(mode="json", exclude={"chain"}))


@dataclass(frozen=True, slots=True)
class Sealable:
    """What a ledger writer makes of one source record before sealing it."""

    kind: Kind
    partition: int
    offset: int
    log_time: datetime
    facts: Facts
    identifiers: tuple[str, ...]  # the first is whose key seals
    content: bytes


def record_id(kind: Kind, partition: int, offset: int) -> str:
    # The sealed content is bound to this id: moved to another entry it fails to open.
    return f"{kind}:{partition}:{offset}"


def link(previous: str, unchained: bytes) -> str:
    return hashlib.sha256(previous.encode() + b"\n" + unchained).hexdigest()


def seal_entry(
    item: Sealable, pseudonyms: tuple[str, ...], key: DataKey | None, previous: str
) -> LedgerEntry:
    """Seals `item` under `key` (its first identifier's) and chains it after `previous`;
    without a key (its person is erased already) the entry keeps no content."""
    unchained = {
        "v": 1,
        "kind": item.kind,
        "partition": item.partition,
        "offset": item.offset,
        "log_time": item.log_time,
        "facts": dict(item.facts),
        "pseudonyms": pseudonyms,
        "sealed": NOTHING
        if key is None
        else seal_field(
            key, record_id(item.kind, item.partition, item.offset), item.kind, item.content
        ),
    }
    draft = LedgerEntry.model_validate({**unchained, "chain": GENESIS})
    return draft.model_copy(update={"chain": link(previous, draft.unchained_bytes())})


def open_entry(entry: LedgerEntry, keys: Mapping[str, DataKey | Erased]) -> bytes | Erased:
    """The sealed content, or Erased when the key that sealed it is gone. Raises
    UnreadableFieldError when the entry was altered or its key is not the one that
    sealed it."""
    key = keys.get(entry.pseudonyms[0])
    if entry.sealed == NOTHING or key is None or isinstance(key, Erased):
        return Erased(entry.pseudonyms[0])
    return open_field(key, entry.record_id, entry.kind, entry.sealed)


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """What checking a partition's chain found: how many entries, the last link, and
    the offset of the first entry whose link does not follow (None: intact)."""

    entries: int
    head: str
    broken_at: int | None = None

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def check_chain(entries: Iterable[tuple[int, LedgerEntry]], previous: str = GENESIS) -> ChainCheck:
    """Checks one ledger partition's entries, given with their ledger offsets in order:
    each link must follow from the one before and the entry's own bytes, so an entry
    altered, removed, inserted or moved breaks the chain there. Needs no key."""
    count = 0
    for offset, entry in entries:
        if entry.chain != link(previous, entry.unchained_bytes()):
            return ChainCheck(count, previous, offset)
        previous = entry.chain
        count += 1
    return ChainCheck(count, previous)


def _canonical(value: object) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
