"""Reads a source's topics into a History: a group-less, read_committed consumer
(the dispatcher writes decisions in Kafka transactions: an aborted one never
counts), from the beginning or a time range, up to the end offsets taken at start.
The source is the three topics (`Topics`), or the ledgers with the requests topic
(services/audit/ledger_read.py): both read through this module's bounds, reader and
collector, so the two judge the same records the same way.

consent.events.v1 (and every ledger) is always read from the beginning: a subject's
state at any decision is the fold of its whole history. With `since`, requests and
decisions are read from `since - context` (the frequency window: the dispatcher's
counts at the first decisions in range look back that far); with `until`, requests
stop there, while decisions are read to the end, so that a request made just
before `until` finds its decision."""

import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import Enum, auto
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import ValidationError
from tqdm import tqdm

from services.audit.history import History, LoggedDecision, LoggedRequest
from shared.consent.authenticity import UNAUTHENTICATED_SOURCE, Trust
from shared.consent.logged_record import logged_event
from shared.consent.people import connected, is_identity
from shared.consent.state import LoggedEvent
from shared.contract.decisions import DispatchDecision
from shared.contract.event_parsing import parse_consent_event
from shared.contract.events import IDENTITY_TYPES
from shared.contract.requests import parse_send_request, salvage_purpose, salvage_request_id
from shared.identifiers import normalize_identifier
from shared.kafka.log_order import broker_time
from shared.kafka.range_reader import (
    Ranges,
    ReadStalledError,
    range_consumer,
    read_ranges,
    whole_topic,
)
from shared.phone import InvalidPhoneNumberError
from shared.rejection import Rejected
from shared.topics import CONSENT_EVENTS, MESSAGES_DECISIONS, MESSAGES_REQUESTS

_CHUNK = 10_000
_PROGRESS_FROM = 50_000  # records: below this a replay is short, no bar unless asked

Handler = Callable[[ConsumerRecord], None]
# Where a record of the log is: its broker time, partition and offset.
Place = tuple[datetime, int, int]


class ReplayError(RuntimeError):
    """The topics cannot be read (missing, or no progress from the broker)."""


@dataclass(frozen=True)
class ReplayScope:
    # Phone numbers (E.164) or BSUIDs; None: every subject. The replay widens it to
    # every identifier linked to them: a person's decisions need all their history.
    subjects: frozenset[str] | None = None
    since: datetime | None = None
    until: datetime | None = None
    context: timedelta = timedelta(0)


class Bound(Enum):
    """How far a topic is read (this module's docstring)."""

    WHOLE = auto()  # from the beginning: the consent log and the ledgers
    REQUESTS = auto()  # from since - context, up to until
    DECISIONS = auto()  # from since - context, to the end


class Pass(Protocol):
    """One reading of a source: what becomes of each topic's records, and what is left
    to do once they are all read."""

    @property
    def handlers(self) -> Mapping[str, Handler]: ...

    async def finish(self, bounds: Ranges) -> None: ...


class Source(Protocol):
    """What a replay reads: its topics, each with its bound, and a pass over them that
    fills the History."""

    def bounds(self) -> Mapping[str, Bound]: ...

    def begin(self, scope: ReplayScope, history: History, trust: Trust) -> Pass: ...


@dataclass(frozen=True)
class Topics:
    """The three topics: the replay's usual source."""

    events: str = CONSENT_EVENTS
    requests: str = MESSAGES_REQUESTS
    decisions: str = MESSAGES_DECISIONS

    def bounds(self) -> Mapping[str, Bound]:
        return {
            self.events: Bound.WHOLE,
            self.requests: Bound.REQUESTS,
            self.decisions: Bound.DECISIONS,
        }

    def begin(self, scope: ReplayScope, history: History, trust: Trust) -> Pass:
        return _Handled(Collector(self, scope, history, trust).handlers)


@dataclass(frozen=True)
class _Handled:
    handlers: Mapping[str, Handler]

    async def finish(self, bounds: Ranges) -> None:
        """Nothing: each record was judged as it was read."""


@dataclass
class Replayed:
    history: History
    as_of: datetime
    seconds: float
    positions: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)
    read: Counter[str] = field(default_factory=Counter)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _phone(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return normalize_identifier(value)
    except InvalidPhoneNumberError:
        return None


class Collector:
    """Turns records into the History's values, keeping only the scope's subjects. The
    ledgers hand it what their entries hold (`logged`, `decided`)."""

    def __init__(self, topics: Topics, scope: ReplayScope, history: History, trust: Trust) -> None:
        self.topics, self.scope, self.history, self.trust = topics, scope, history, trust
        self.handlers: dict[str, Handler] = {
            topics.events: self.event,
            topics.requests: self.request,
            topics.decisions: self.decision,
        }

    def wanted(self, record: ConsumerRecord, field_name: str) -> bool:
        return self._wanted(record.value, _key(record), field_name)

    def _wanted(self, raw: bytes | None, key: str | None, field_name: str) -> bool:
        if self.scope.subjects is None:
            return True
        try:
            body = orjson.loads(raw) if raw is not None else None
        except orjson.JSONDecodeError:
            body = None
        value = body.get(field_name) if isinstance(body, dict) else None
        return (_phone(value) or _phone(key)) in self.scope.subjects

    def event(self, record: ConsumerRecord) -> None:
        # Identity events are kept whoever they name (they are few): they tell whom
        # a scope must be widened to.
        if not self.wanted(record, "subject") and not _names_identity(record.value):
            return
        logged = logged_event(record, self.trust)
        if isinstance(logged, Rejected):
            self.history.unreadable[record.topic] += 1
            if logged.reason == UNAUTHENTICATED_SOURCE:
                self._forged(record, logged)
            return
        self.history.events.append(logged)

    def logged(self, logged: LoggedEvent) -> None:
        """An event as the projector accepted it (a consent ledger entry's)."""
        subjects = self.scope.subjects
        if subjects is None or logged.event.subject in subjects or is_identity(logged):
            self.history.events.append(logged)

    def _forged(self, record: ConsumerRecord, refused: Rejected) -> None:
        parsed = parse_consent_event(record.value)
        if isinstance(parsed, Rejected):
            return
        # Identity events are read whoever they name: a forged one is this audit's
        # finding only when it names someone in scope.
        named = {parsed.subject, parsed.other_identifier}
        if self.scope.subjects is not None and not named & self.scope.subjects:
            return
        placed = LoggedEvent.from_log(parsed, broker_time(record), record.partition, record.offset)
        self.history.forged.append((placed, refused.detail))

    def request(self, record: ConsumerRecord) -> None:
        if not self.wanted(record, "recipient"):
            return
        parsed = parse_send_request(record.value)
        where = (broker_time(record), record.partition, record.offset)
        if not isinstance(parsed, Rejected):
            self.history.requests.append(
                LoggedRequest(
                    parsed.request_id, parsed.recipient, parsed.purpose, parsed, None, *where
                )
            )
            return
        request_id = salvage_request_id(record.value)
        if request_id is None:  # dead-lettered only: no decision is owed
            self.history.unreadable[record.topic] += 1
            return
        purpose = salvage_purpose(record.value)
        self.history.requests.append(
            LoggedRequest(request_id, _key(record), purpose, None, parsed.reason, *where)
        )

    def decision(self, record: ConsumerRecord) -> None:
        if record.value is not None:
            place = (broker_time(record), record.partition, record.offset)
            self.decided(record.value, _key(record), record.topic, place)

    def decided(self, raw: bytes, key: str | None, topic: str, place: Place) -> None:
        """A decision record's exact value, read from `topic` (or its ledger) at `place`."""
        if not self._wanted(raw, key, "recipient"):
            return
        try:
            decision = DispatchDecision.model_validate_json(raw)
        except ValidationError:
            self.history.unreadable[topic] += 1
            return
        self.history.decisions.append(LoggedDecision(decision, *place))


# The name the first tests of the collector import.
_Collector = Collector


def _key(record: ConsumerRecord) -> str | None:
    return record.key.decode(errors="replace") if record.key else None


def _names_identity(raw: bytes | None) -> bool:
    return raw is not None and any(f'"{kind.value}"'.encode() in raw for kind in IDENTITY_TYPES)


async def replay(
    bootstrap: str,
    scope: ReplayScope,
    source: Source = Topics(),
    *,
    trust: Trust,
    progress: bool | None = None,
) -> Replayed:
    """Reads the source (the three topics unless told) into a History. `progress`:
    None shows a bar on stderr for long replays only. A scope of some subjects that
    turn out linked to others is read again, widened to them all."""
    replayed = await _replay_once(bootstrap, scope, source, trust, progress)
    if scope.subjects is None:
        return replayed
    identity = [e for e in replayed.history.events if is_identity(e)]
    wider = connected(scope.subjects, identity)
    if wider == scope.subjects:
        return replayed
    return await _replay_once(bootstrap, replace(scope, subjects=wider), source, trust, progress)


async def _replay_once(
    bootstrap: str, scope: ReplayScope, source: Source, trust: Trust, progress: bool | None
) -> Replayed:
    started = time.monotonic()
    history = History()
    reading = source.begin(scope, history, trust)
    consumer = range_consumer(bootstrap)
    await consumer.start()
    try:
        result = Replayed(history, datetime.now(UTC), 0.0)
        roles = source.bounds()
        bounds = await _bounds(consumer, roles, scope)
        result.positions = {
            t: {str(tp.partition): b for tp, b in bounds.items() if tp.topic == t} for t in roles
        }
        # Retention may have trimmed old requests: a decision without its request is
        # then no finding either.
        history.requests_complete = scope.since is None and all(
            start == 0 for tp, (start, _) in bounds.items() if roles[tp.topic] is Bound.REQUESTS
        )
        await _read(consumer, bounds, reading.handlers, result.read, progress)
    finally:
        await consumer.stop()
    await reading.finish(bounds)
    result.seconds = time.monotonic() - started
    return result


async def _bounds(
    consumer: AIOKafkaConsumer, roles: Mapping[str, Bound], scope: ReplayScope
) -> dict[TopicPartition, tuple[int, int]]:
    """Returns the (start, stop) offsets per partition of every topic."""
    bounds: dict[TopicPartition, tuple[int, int]] = {}
    for topic, role in roles.items():
        bounds |= await _bounded(consumer, topic, role, scope)
    return bounds


async def _bounded(
    consumer: AIOKafkaConsumer, topic: str, role: Bound, scope: ReplayScope
) -> dict[TopicPartition, tuple[int, int]]:
    try:
        whole = await whole_topic(consumer, topic)
    except LookupError as exc:
        raise ReplayError(str(exc)) from exc
    if role is Bound.WHOLE:
        return whole
    tps = list(whole)
    starts = {tp: start for tp, (start, _) in whole.items()}
    stops = {tp: stop for tp, (_, stop) in whole.items()}
    if scope.since is not None:
        starts = await _offsets_at(consumer, tps, scope.since - scope.context, stops)
    if role is Bound.REQUESTS and scope.until is not None:
        stops = await _offsets_at(consumer, tps, scope.until, stops)
    return {tp: (min(starts[tp], stops[tp]), stops[tp]) for tp in tps}


async def _offsets_at(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    moment: datetime,
    ends: dict[TopicPartition, int],
) -> dict[TopicPartition, int]:
    """Returns the first offset whose timestamp is at or after `moment` (the end if none)."""
    found = await consumer.offsets_for_times({tp: max(0, _ms(moment)) for tp in tps})
    return {tp: min(ends[tp], found[tp].offset) if found.get(tp) else ends[tp] for tp in tps}


async def _read(
    consumer: AIOKafkaConsumer,
    bounds: Ranges,
    handlers: Mapping[str, Handler],
    read: Counter[str],
    progress: bool | None,
) -> None:
    total = sum(stop - start for start, stop in bounds.values())
    show = progress if progress is not None else total >= _PROGRESS_FROM
    with tqdm(
        total=total,
        desc="audit replay",
        unit="rec",
        unit_scale=True,
        file=sys.stderr,
        disable=not show,
        mininterval=0.5 if sys.stderr.isatty() else 5.0,
    ) as bar:
        batches = read_ranges(consumer, bounds, max_records=_CHUNK, progress=bar.update)
        try:
            async for records in batches:
                topic = records[0].topic
                handle = handlers[topic]
                read[topic] += len(records)
                for record in records:
                    handle(record)
        except ReadStalledError as exc:
            raise ReplayError(str(exc)) from exc
