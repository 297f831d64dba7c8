"""Holds the replayed history the audit judges: records of the three topics with their
place in the log. Plain values, no I/O: `replay` fills them, `recompute` reads them."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.consent.state import LoggedEvent
from shared.contract.decisions import DispatchDecision
from shared.contract.requests import SendRequest
from shared.dispatch.quiet_hours import QuietHoursPolicy
from shared.dispatch.rules import FrequencyPolicy
from shared.dispatch.timing import ALWAYS_OPEN


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """Holds a record of messages.requests.v1 that has a request_id. `request` is None
    when the record is unusable: the dispatcher owes it one `invalid_request`."""

    request_id: str
    recipient: str | None
    purpose: str | None
    request: SendRequest | None
    rejection: str | None
    log_time: datetime
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    decision: DispatchDecision
    log_time: datetime
    partition: int
    offset: int

    def order_key(self) -> tuple[datetime, str, int, int]:
        # One batch shares one decided_at and the gate decides it by recipient, each
        # recipient's in request order; a recipient's decisions share a partition:
        # this is the order they were made.
        return (
            self.decision.decided_at,
            self.decision.recipient or "",
            self.partition,
            self.offset,
        )


@dataclass
class History:
    events: list[LoggedEvent] = field(default_factory=list)
    requests: list[LoggedRequest] = field(default_factory=list)
    decisions: list[LoggedDecision] = field(default_factory=list)
    # False when requests were read from a time range on: a decision whose request
    # was not read is then not a finding (its request may simply be older).
    requests_complete: bool = True
    unreadable: Counter[str] = field(default_factory=Counter)  # topic -> records
    # Events that claim WhatsApp without its signature, with why: the projection
    # refused them, and someone wrote them.
    forged: list[tuple[LoggedEvent, str]] = field(default_factory=list)


@dataclass(frozen=True)
class AuditPolicy:
    """Holds what the audit judges by. `as_of` is when the replay took its end offsets:
    a request younger than `settle`, or an opt-out younger than the confirmation
    deadline, may still be in flight and is counted as pending, not as a finding."""

    frequency: FrequencyPolicy
    as_of: datetime
    quiet_hours: QuietHoursPolicy = ALWAYS_OPEN
    since: datetime | None = None
    until: datetime | None = None
    confirmation_deadline: timedelta = timedelta(minutes=5)
    settle: timedelta = timedelta(seconds=60)
    # The log shows when the broker appended an OptedOut (or an ErasureRequested),
    # not when its producer got the acknowledgement the contract's freshness promise
    # starts from. One appended less than this before a decision, and not covered by
    # its fence, may not have been acknowledged yet: it is not a breach.
    ack_allowance: timedelta = timedelta(seconds=1)

    def in_range(self, moment: datetime) -> bool:
        return (self.since is None or moment >= self.since) and (
            self.until is None or moment < self.until
        )
