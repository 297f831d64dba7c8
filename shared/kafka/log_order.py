"""Places a record in the log, and finds the first record per id in that order:
the log decides which of two records carrying one id counts (the projection's
table, the rebuild, the fold and the audit keep the same one)."""

from collections.abc import Callable, Hashable, Iterable
from datetime import UTC, datetime
from operator import attrgetter
from typing import Protocol, TypeVar

from aiokafka import TopicPartition


class _AtPosition(Protocol):
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


class _InTopic(_AtPosition, Protocol):
    @property
    def topic(self) -> str: ...


class LogRecord(_AtPosition, Protocol):
    """Names what is read of a Kafka record (aiokafka's ConsumerRecord is one)."""

    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int: ...


class Positioned(_AtPosition, Protocol):
    """Describes a value read from the log, with its broker time and position."""

    @property
    def log_time(self) -> datetime: ...


_P = TypeVar("_P", bound=Positioned)
_K = TypeVar("_K", bound=Hashable)

# Log order across partitions: the broker's time, then the position.
_LOG_ORDER = attrgetter("log_time", "partition", "offset")


def broker_time(record: LogRecord) -> datetime:
    """Returns the record's broker timestamp (milliseconds since the epoch) as an aware
    datetime."""
    return datetime.fromtimestamp(record.timestamp / 1000, UTC)


def first_per_id(records: Iterable[_P], id_of: Callable[[_P], _K]) -> dict[_K, _P]:
    """Returns, per id, the record that comes first in log order; the dict lists them in
    log order."""
    first: dict[_K, _P] = {}
    for record in sorted(records, key=_LOG_ORDER):
        first.setdefault(id_of(record), record)
    return first


def next_offsets(records: Iterable[_InTopic]) -> dict[TopicPartition, int]:
    """Returns, per partition, the offset after the last of `records`: what to commit."""
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
    return offsets
