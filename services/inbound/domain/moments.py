"""Places what a webhook reports in time: WhatsApp stamps it to the second."""

from datetime import datetime, timedelta


def reported_moment(stamped: datetime | None, received_at: datetime) -> datetime:
    """Counts a report from the end of its second, never later than we received it.

    A grant recorded later in the second of a STOP must not outrank it, and a STOP
    sent in the second its number changed hands must still bind the person who
    sent it: ties go to the side that stops messages.
    """
    if stamped is None or stamped >= received_at:
        # Also keeps a stamp at the end of time (9999-12-31T23:59:59) from
        # overflowing below, which would fail the record on every redelivery.
        return received_at
    return min(stamped + timedelta(seconds=1) - timedelta(microseconds=1), received_at)
