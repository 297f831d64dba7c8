"""What the run sent and what was acknowledged, with times.

Every time is epoch seconds on this machine's clock: the services run here too, so
a decision's `decided_at` and a webhook's 200 are on one clock."""

from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

STOP, START, OTHER = "stop", "start", "other"


class RequestKind(StrEnum):
    TRAFFIC = "traffic"
    PROBE = "probe"  # sent right after a heal: when does the system decide again?
    POISON = "poison"  # a hostile record that carries a request_id


@dataclass
class SentRequest:
    request_id: str
    recipient: str
    purpose: str
    created_at: float
    kind: RequestKind = RequestKind.TRAFFIC
    acked_at: float | None = None  # the first acknowledgement by Kafka (acks=all)
    sends: int = 0  # records produced with this request_id (redeliveries included)


@dataclass
class Reply:
    """A signed webhook carrying one user reply, POSTed until inbound answers 200."""

    message_id: str
    subject: str
    text: str
    kind: str  # STOP, START or OTHER
    first_sent_at: float
    acked_at: float | None = None  # the first 200
    statuses: list[str] = field(default_factory=list)  # each attempt: "200", "503", "ReadTimeout"
    enforced_at: float | None = None  # a STOP: the consent API first said opted_out


@dataclass
class Grant:
    event_id: str
    subject: str
    purposes: list[str]
    acked_at: float


@dataclass
class PoisonRecord:
    name: str
    topic: str
    partition: int
    offset: int
    acked_at: float
    request_id: str | None = None  # a SendRequest with one must get invalid_request


@dataclass
class Fault:
    kind: str  # kill9, sigstop, broker_kill, pg_crash, poison_burst
    target: str
    started_at: float
    healed_at: float | None = None  # the healing action was taken
    back_at: float | None = None  # the component answered again (ready, seen, accepting)
    probe_request_id: str | None = None
    decided_again_at: float | None = None  # the probe's decision was on the topic
    note: str = ""

    @property
    def recovery_seconds(self) -> float | None:
        if self.healed_at is None or self.decided_again_at is None:
            return None
        return self.decided_again_at - self.healed_at


@dataclass
class History:
    seed: int
    started_at: float
    ended_at: float = 0.0
    requests: dict[str, SentRequest] = field(default_factory=dict)
    replies: list[Reply] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)
    poison: list[PoisonRecord] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    producer_retries: int = 0
    unexpected_exits: list[str] = field(default_factory=list)

    def acked_requests(self) -> list[SentRequest]:
        return [r for r in self.requests.values() if r.acked_at is not None]

    def acked_replies(self, kind: str | None = None) -> list[Reply]:
        return [
            r for r in self.replies if r.acked_at is not None and (kind is None or r.kind == kind)
        ]

    def webhook_statuses(self) -> Counter[str]:
        return Counter(status for reply in self.replies for status in reply.statuses)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def next_start(replies: list[Reply], stop: Reply) -> Reply | None:
    """The subject's first acknowledged START after `stop` was acknowledged: where
    its opt-out window closes."""
    assert stop.acked_at is not None
    later = [
        r
        for r in replies
        if r.subject == stop.subject
        and r.kind == START
        and r.acked_at is not None
        and r.acked_at > stop.acked_at
    ]
    return min(later, key=lambda r: r.acked_at or 0.0, default=None)


def last_acked_reply(replies: list[Reply], subject: str) -> Reply | None:
    """The subject's last acknowledged STOP or START (other texts change nothing)."""
    mine = [
        r for r in replies if r.subject == subject and r.acked_at is not None and r.kind != OTHER
    ]
    return max(mine, key=lambda r: r.acked_at or 0.0, default=None)
