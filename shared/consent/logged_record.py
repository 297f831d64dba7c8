"""Reads a consent.events.v1 record as the fold takes it: validated, its claim to come
from WhatsApp proved, placed in the log and clamped to the broker's clock (the
projector, the rebuild and the audit)."""

from collections.abc import Sequence
from typing import Protocol

from shared.consent.authenticity import Trust
from shared.consent.state import LoggedEvent
from shared.contract.event_parsing import parse_consent_event
from shared.kafka.log_order import LogRecord, broker_time
from shared.rejection import Rejected


class HeadedRecord(LogRecord, Protocol):
    """A log record with its headers (aiokafka's ConsumerRecord is one)."""

    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]: ...


def logged_event(record: HeadedRecord, trust: Trust) -> LoggedEvent | Rejected:
    parsed = parse_consent_event(record.value)
    if isinstance(parsed, Rejected):
        return parsed
    position = (record.partition, record.offset)
    judged = trust.judge(parsed, record.value or b"", record.headers or (), position)
    if isinstance(judged, Rejected):
        return judged
    return LoggedEvent.from_log(
        parsed, broker_time(record), record.partition, record.offset, authenticated=judged
    )
