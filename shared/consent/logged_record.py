"""Reads a consent.events.v1 record as the fold takes it: validated, placed in the log
and clamped to the broker's clock (the projector, the rebuild and the audit)."""

from shared.consent.state import LoggedEvent
from shared.contract.event_parsing import parse_consent_event
from shared.kafka.log_order import LogRecord, broker_time
from shared.rejection import Rejected


def logged_event(record: LogRecord) -> LoggedEvent | Rejected:
    parsed = parse_consent_event(record.value)
    if isinstance(parsed, Rejected):
        return parsed
    return LoggedEvent.from_log(parsed, broker_time(record), record.partition, record.offset)
