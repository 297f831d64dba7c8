"""Holds the replayed history the audit judges: records of the three topics (or of the
ledgers and the requests topic) with their place in the log. Plain values, no I/O:
`replay` fills them, `recompute` reads them."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from services.audit.findings import LedgerFindingKind
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


class PartitionChain(BaseModel):
    """One ledger partition's chain: its records, and the ledger offsets where a link
    does not follow (a record that is no entry included)."""

    model_config = ConfigDict(frozen=True)

    entries: int
    intact: bool
    breaks: list[int]


class LedgerRead(BaseModel):
    """One ledger, read whole: `erased` entries are erased subjects (their key is gone),
    counted and never judged; `unreadable` ones did not open, or are no entry."""

    model_config = ConfigDict(frozen=True)

    ledger: str
    entries: int
    opened: int
    erased: int
    unreadable: int
    partitions: dict[str, PartitionChain]

    @property
    def intact(self) -> bool:
        return all(p.intact for p in self.partitions.values())


@dataclass(frozen=True, slots=True)
class LedgerFault:
    """A ledger record the audit cannot trust, where it is: a finding whatever the range."""

    kind: LedgerFindingKind
    ledger: str
    partition: int
    offset: int
    at: datetime  # the entry's log time, or the record's own for one that is no entry
    detail: str


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
    # Read from the ledgers only (--from-ledger): what each held, what broke, and what
    # is about erased people, set aside from what is judged.
    ledgers: list[LedgerRead] = field(default_factory=list)
    ledger_faults: list[LedgerFault] = field(default_factory=list)
    erased_requests: int = 0
    erased_events: int = 0
    # Opened after their recipient's erasure: no send to them is allowed, so only a
    # dispatch among them is judged.
    about_erased: list[LoggedDecision] = field(default_factory=list)


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
