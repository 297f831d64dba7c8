"""The audit's other source (`--from-ledger`, docs/audit.md "From the ledgers"):
consent.ledger.v1 and messages.decisions.ledger.v1 read whole, with
messages.requests.v1 read as the topic replay reads it. The ledgers are never
trimmed, so this proves the past once the input topics' retention is bounded
(docs/erasure.md, section 3).

Each entry that opens is handed to the replay's own collector: a consent entry as the
event the projector accepted (`logged_from`: the ledger keeps the canonical event and
the projector's judgement of it, not the signed record), a decision entry as the
decision record's exact value, placed where the source topic had it. So both sources
are judged by one code."""

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
from aiokafka import ConsumerRecord
from pydantic import ValidationError

from services.audit.erased_people import ErasedPeople, set_aside
from services.audit.history import History
from services.audit.ledger_open import OpenedLedger, Stored, open_ledger, stored
from services.audit.replay import Bound, Collector, Handler, ReplayScope, Topics
from services.consent.ledger.entries import logged_from
from shared.consent.authenticity import Trust
from shared.consent.people import is_identity
from shared.erasure.key_cache import CachedDataKeys
from shared.erasure.key_store import PostgresKeyStore
from shared.erasure.master_keys import UnknownMasterKeyError, UnwrapError
from shared.erasure.settings import ErasureSettings
from shared.kafka.range_reader import Ranges
from shared.ledger.entries import Kind, LedgerEntry
from shared.pseudonyms import Pseudonymizer
from shared.topics import CONSENT_LEDGER, DECISIONS_LEDGER

_SUPPRESSED = "SELECT pseudonym FROM consent.suppression"
# What reading the key table can fail with: the database, or a key wrapped under a
# master key that is not configured (or not the one configured under its id).
_KEY_FAILURES = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    UnknownMasterKeyError,
    UnwrapError,
)


class LedgerKeysError(RuntimeError):
    """The data keys or the suppression list cannot be read: nothing can be opened."""


@dataclass(frozen=True)
class Ledgers:
    events: str = CONSENT_LEDGER
    decisions: str = DECISIONS_LEDGER


@dataclass(frozen=True)
class LedgerSource:
    """What a replay from the ledgers needs besides the broker: the data keys, the index
    key of the pseudonyms, and consent.suppression's pseudonyms. Of `topics`, only the
    requests topic is read."""

    keys: CachedDataKeys
    index: Pseudonymizer
    suppressed: frozenset[str]
    ledgers: Ledgers = field(default_factory=Ledgers)
    topics: Topics = field(default_factory=Topics)

    def bounds(self) -> Mapping[str, Bound]:
        return {
            self.ledgers.events: Bound.WHOLE,
            self.ledgers.decisions: Bound.WHOLE,
            self.topics.requests: Bound.REQUESTS,
        }

    def begin(self, scope: ReplayScope, history: History, trust: Trust) -> "LedgerPass":
        return LedgerPass(self, Collector(self.topics, scope, history, trust))


class LedgerPass:
    """One reading of the ledgers: their records are kept as they come, then checked,
    opened and collected once all are read (opening needs the key table, which a
    consumer's handler cannot wait for)."""

    def __init__(self, source: LedgerSource, collector: Collector) -> None:
        self.source, self.collector = source, collector
        ledgers = source.ledgers
        self.kept: dict[str, dict[int, list[Stored]]] = {ledgers.events: {}, ledgers.decisions: {}}
        self.handlers: Mapping[str, Handler] = {
            ledgers.events: self._keep,
            ledgers.decisions: self._keep,
            source.topics.requests: collector.request,
        }

    def _keep(self, record: ConsumerRecord) -> None:
        self.kept[record.topic].setdefault(record.partition, []).append(stored(record))

    async def finish(self, bounds: Ranges) -> None:
        # An empty partition is listed too: its chain is intact, and the report says so.
        for tp in bounds:
            if tp.topic in self.kept:
                self.kept[tp.topic].setdefault(tp.partition, [])
        events, decisions = await self._open_both()
        for entry, content in events.contents:
            self._event(entry, content)
        for entry, content in decisions.contents:
            place = (entry.log_time, entry.partition, entry.offset)
            self.collector.decided(content, None, self.source.ledgers.decisions, place)
        history = self.collector.history
        erased = events.erased | decisions.erased | self.source.suppressed
        identity = [e for e in history.events if is_identity(e)]
        set_aside(history, ErasedPeople(erased, self.source.index, identity))

    async def _open_both(self) -> tuple[OpenedLedger, OpenedLedger]:
        try:
            events = await self._open(self.source.ledgers.events, "event")
            decisions = await self._open(self.source.ledgers.decisions, "decision")
        except _KEY_FAILURES as exc:
            why = f"cannot read the data keys: {type(exc).__name__}: {exc}"
            raise LedgerKeysError(why) from exc
        return events, decisions

    async def _open(self, ledger: str, kind: Kind) -> OpenedLedger:
        source = self.source
        opened = await open_ledger(ledger, kind, self.kept[ledger], source.keys, source.suppressed)
        self.collector.history.ledgers.append(opened.read)
        self.collector.history.ledger_faults.extend(opened.faults)
        return opened

    def _event(self, entry: LedgerEntry, content: bytes) -> None:
        try:
            logged = logged_from(entry, content)
        except ValidationError:
            # Sealed under its person's key, so written by whoever holds the keys: counted
            # as the topic replay counts an unreadable record.
            self.collector.history.unreadable[self.source.ledgers.events] += 1
            return
        self.collector.logged(logged)


@dataclass(frozen=True)
class FromLedger:
    """`--from-ledger`: where the key table and the suppression list are (the audit's
    role, consent_audit, may read both), and the keys' settings."""

    database_url: str
    erasure: ErasureSettings
    ledgers: Ledgers = field(default_factory=Ledgers)


@asynccontextmanager
async def ledger_source(setup: FromLedger, topics: Topics) -> AsyncIterator[LedgerSource]:
    """A LedgerSource on one connection, open while the replay runs: the keys are read
    as the entries are opened."""
    try:
        conn = await asyncpg.connect(setup.database_url)
    except _KEY_FAILURES as exc:
        raise LedgerKeysError(f"cannot connect to the database: {type(exc).__name__}") from exc
    try:
        try:
            rows = await conn.fetch(_SUPPRESSED)
        except _KEY_FAILURES as exc:
            why = f"cannot read consent.suppression: {type(exc).__name__}: {exc}"
            raise LedgerKeysError(why) from exc
        yield LedgerSource(
            keys=setup.erasure.data_keys(PostgresKeyStore(conn)),
            index=setup.erasure.pseudonyms(),
            suppressed=frozenset(row["pseudonym"] for row in rows),
            ledgers=setup.ledgers,
            topics=topics,
        )
    finally:
        await conn.close()
