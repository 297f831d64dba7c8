"""The ledgers as their writers keep them, in memory, for the audit's tests without a
broker: a history recorded as the dispatcher decides it (builders.RecordedLog) is
written out record by record, each described as the writer describes it
(`event_sealable`, `decision_sealable`), sealed under its first identifier's data
key (an in-memory key table) and chained per partition; its requests go to the
requests topic in clear. `replay` reads them back through the audit's ledger pass."""

import dataclasses
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from services.audit.history import History, LoggedDecision, LoggedRequest
from services.audit.ledger_read import Ledgers, LedgerSource
from services.audit.replay import ReplayScope, Topics
from services.consent.ledger.entries import decision_sealable, event_sealable
from shared.consent.state import LoggedEvent
from shared.erasure.key_cache import CachedDataKeys
from shared.ledger.entries import GENESIS, LedgerEntry, Sealable, seal_entry
from tests.support.erasure_keys import InMemoryKeyStore, masters
from tests.support.records import consumer_record
from tests.support.signing import ERASURE_INDEX, TRUST, signed_headers
from tests.unit.audit.builders import RecordedLog

LEDGERS = Ledgers(events="test.consent.ledger", decisions="test.decisions.ledger")
TOPICS = Topics(events="test.consent.events", requests="test.requests", decisions="test.decisions")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass
class LedgerBook:
    """Both ledgers and the requests topic, with the key table they are sealed under."""

    store: InMemoryKeyStore = field(default_factory=InMemoryKeyStore)
    suppressed: dict[str, datetime] = field(default_factory=dict)  # pseudonym -> erased_at
    records: dict[str, list[ConsumerRecord]] = field(default_factory=dict)
    heads: dict[tuple[str, int], str] = field(default_factory=dict)
    written: tuple[int, int, int] = (0, 0, 0)  # events, requests, decisions of the log
    _offsets: Counter[tuple[str, int]] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.keys = CachedDataKeys(self.store, masters("2026-06"))

    async def write(self, log: RecordedLog) -> None:
        """Writes what `log` recorded since the last call, as the writers and the
        producers of requests would."""
        history = log.history
        events, requests, decisions = self.written
        for logged in history.events[events:]:
            await self.event(logged)
        for asked in history.requests[requests:]:
            self.request(asked)
        for decided in history.decisions[decisions:]:
            await self.decision(decided)
        self.written = (len(history.events), len(history.requests), len(history.decisions))

    async def event(self, logged: LoggedEvent) -> None:
        raw = logged.event.model_dump_json(exclude_none=True).encode()
        record = consumer_record(
            TOPICS.events,
            logged.partition,
            logged.offset,
            raw,
            headers=signed_headers(raw),
            timestamp_ms=_ms(logged.log_time),
        )
        sealable = event_sealable(record, TRUST)
        assert sealable is not None, "the projector accepts it"
        await self.seal(LEDGERS.events, sealable)

    async def decision(self, decided: LoggedDecision) -> None:
        raw = decided.decision.model_dump_json().encode()
        record = consumer_record(
            TOPICS.decisions,
            decided.partition,
            decided.offset,
            raw,
            timestamp_ms=_ms(decided.log_time),
        )
        sealable = decision_sealable(record)
        assert sealable is not None
        await self.seal(LEDGERS.decisions, sealable)

    def request(self, asked: LoggedRequest) -> None:
        assert asked.request is not None
        raw = asked.request.model_dump_json(exclude_none=True).encode()
        key = (asked.recipient or "").encode()
        self._append(
            TOPICS.requests,
            consumer_record(
                TOPICS.requests,
                asked.partition,
                asked.offset,
                raw,
                key=key,
                timestamp_ms=_ms(asked.log_time),
            ),
        )

    async def seal(self, ledger: str, item: Sealable) -> LedgerEntry:
        """Seals as the writer does: under a key made on first sight; nothing for a
        record of an erased person's past."""
        names = tuple(ERASURE_INDEX.of(i) for i in item.identifiers)
        key = (await self.keys.for_writing([names[0]]))[names[0]]
        if any(item.log_time < self.suppressed.get(n, item.log_time) for n in names):
            key = None
        head = self.heads.get((ledger, item.partition), GENESIS)
        entry = seal_entry(item, names, key, head)
        self.heads[(ledger, item.partition)] = entry.chain
        self.put(ledger, item.partition, entry.model_dump_json().encode(), item.log_time)
        return entry

    def put(self, ledger: str, partition: int, value: bytes, when: datetime) -> None:
        offset = self._offsets[(ledger, partition)]
        self._append(
            ledger, consumer_record(ledger, partition, offset, value, timestamp_ms=_ms(when))
        )

    def _append(self, topic: str, record: ConsumerRecord) -> None:
        self._offsets[(topic, record.partition)] = record.offset + 1
        self.records.setdefault(topic, []).append(record)

    async def erase(self, *identifiers: str, erased_at: datetime) -> None:
        """As the erasure job: the person's keys deleted, their identifiers suppressed."""
        pseudonyms = [ERASURE_INDEX.of(i) for i in identifiers]
        await self.keys.erase(pseudonyms)
        self.suppressed |= dict.fromkeys(pseudonyms, erased_at)

    def entries(self, ledger: str) -> list[LedgerEntry]:
        return [LedgerEntry.model_validate_json(r.value) for r in self.records.get(ledger, [])]

    def alter(self, ledger: str, index: int, **changes: Any) -> None:
        """Rewrites the `index`th record of `ledger` with `changes` to its entry."""
        record = self.records[ledger][index]
        entry = LedgerEntry.model_validate_json(record.value)
        value = entry.model_copy(update=changes).model_dump_json().encode()
        self.records[ledger][index] = dataclasses.replace(record, value=value)

    def source(self, suppressed: Iterable[str] | None = None) -> LedgerSource:
        return LedgerSource(
            keys=self.keys,
            index=ERASURE_INDEX,
            suppressed=frozenset(self.suppressed if suppressed is None else suppressed),
            ledgers=LEDGERS,
            topics=TOPICS,
        )

    async def replay(
        self, scope: ReplayScope | None = None, *, suppressed: Iterable[str] | None = None
    ) -> History:
        """Reads the ledgers and the requests through the audit's ledger pass."""
        history = History()
        reading = self.source(suppressed).begin(scope or ReplayScope(), history, TRUST)
        for topic, records in self.records.items():
            for record in records:
                reading.handlers[topic](record)
        await reading.finish(self._bounds())
        return history

    def _bounds(self) -> dict[TopicPartition, tuple[int, int]]:
        topics = (LEDGERS.events, LEDGERS.decisions, TOPICS.requests)
        return {
            TopicPartition(topic, partition): (0, end)
            for (topic, partition), end in self._offsets.items()
            if topic in topics
        }
