"""Tells why a batch failed: a dependency that cannot serve now (retry, fail closed),
or the batch's own records (find the one that fails on its own, dead-letter it).

The two mistakes cost differently. Taking a record failure for a dependency
failure stops the consumer; taking a dependency failure for a record failure
would dead-letter a healthy record, perhaps a STOP. So anything that looks like a
dependency is one, and the consume loop asks the dependencies themselves (its probe)
before it believes a record is to blame."""

import asyncpg
import httpx
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from shared.rejection import Rejected

# PostgreSQL error classes that say nothing about the statement's data: the
# connection (08), a transaction rolled back by a deadlock or serialization
# failure (40), resources (53), operator intervention such as a shutdown (57),
# and system errors (58).
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})

# Kafka errors that a record causes by itself: the output it leads to is too
# large for the broker. Every other Kafka error is the cluster's.
_RECORD_KAFKA_ERRORS = (MessageSizeTooLargeError,)

UNPROCESSABLE = "unprocessable"


class DependencyUnavailableError(Exception):
    """A dependency (database, broker, projection, provider) cannot serve now: the
    batch waits for it and is never blamed on its records."""


def is_dependency_failure(error: BaseException) -> bool:
    """Returns True when `error` is known to come from a dependency, whatever the records."""
    if isinstance(error, DependencyUnavailableError | OSError | httpx.TransportError):
        return True
    if isinstance(error, asyncpg.InterfaceError):  # connection closed, pool closing
        return True
    if isinstance(error, asyncpg.PostgresError):
        sqlstate = getattr(error, "sqlstate", None) or ""
        return sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES
    if isinstance(error, KafkaError):
        return not isinstance(error, _RECORD_KAFKA_ERRORS)
    return False


def unprocessable(error: BaseException) -> Rejected:
    """Returns the DLQ reason of a record that fails on its own: the exception's type and
    message, so an operator can tell a bug from a hostile record."""
    message = str(error) or repr(error)
    return Rejected(reason=UNPROCESSABLE, detail=f"{type(error).__name__}: {message}")
