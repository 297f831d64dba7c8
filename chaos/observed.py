"""What the outside saw after the run: the topics read from the beginning
(read_committed), the consent API, and the exit codes of the audit and the rebuild."""

from collections import Counter, defaultdict
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LoggedDecision:
    request_id: str
    recipient: str | None
    purpose: str | None
    decision: str
    reason: str
    decided_at: float
    opt_out_event_id: str | None = None
    # The consent.events.v1 end offsets the dispatcher waited for: it decided on
    # every event below them, however long after decided_at it read them.
    fence: dict[str, int] = field(default_factory=dict)

    def saw(self, partition: int, offset: int) -> bool:
        """True when the event at that position was below the decision's fence."""
        return self.fence.get(str(partition), 0) > offset


@dataclass(frozen=True)
class ReplyEvent:
    """An OptedOut/OptedIn that inbound wrote for a reply (evidence.message_id)."""

    message_id: str
    type: str
    subject: str
    event_id: str
    appended_at: float  # the broker's LogAppendTime
    visible_at: float  # first seen by a read_committed reader of the log: acknowledged by then
    partition: int = -1  # its position on consent.events.v1
    offset: int = -1


@dataclass(frozen=True)
class DeadLetter:
    topic: str  # the .dlq topic
    source: tuple[str, int, int]  # source.topic, source.partition, source.offset
    reason: str | None


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_code: int
    tail: str  # the last lines of its output


@dataclass
class Observed:
    decisions: list[LoggedDecision] = field(default_factory=list)
    outbound: Counter[str] = field(default_factory=Counter)  # request_id header -> records
    reply_events: dict[str, ReplyEvent] = field(default_factory=dict)  # by message_id
    requests_in_log: set[str] = field(default_factory=set)  # request_ids on messages.requests.v1
    dead_letters: list[DeadLetter] = field(default_factory=list)
    consent_status: dict[str, str] = field(default_factory=dict)  # subject -> API status
    rebuild: CommandResult | None = None
    audit: CommandResult | None = None
    drain_seconds: float | None = None  # None: not drained within the bound
    drain_timeout: float = 0.0

    def decisions_by_request(self) -> dict[str, list[LoggedDecision]]:
        by_id: dict[str, list[LoggedDecision]] = defaultdict(list)
        for d in self.decisions:
            by_id[d.request_id].append(d)
        return by_id

    def dispatched_to(self) -> dict[str, list[LoggedDecision]]:
        by_recipient: dict[str, list[LoggedDecision]] = defaultdict(list)
        for d in self.decisions:
            if d.decision == "dispatched" and d.recipient is not None:
                by_recipient[d.recipient].append(d)
        return by_recipient

    def dead_letter_reasons(self) -> dict[tuple[str, int, int], str | None]:
        return {letter.source: letter.reason for letter in self.dead_letters}
