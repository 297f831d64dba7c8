"""Plans what a decided batch publishes: each record's DLQ copy when it is unusable, and
its decision (with the send when dispatched) once per request_id, as the records
Kafka carries."""

from dataclasses import dataclass, field

import structlog

from services.dispatcher import metrics
from services.dispatcher.gate.decide import Parsed
from services.dispatcher.gate.store import DecisionRow
from shared.kafka.dlq import dlq_headers
from shared.rejection import Rejected
from shared.topics import MESSAGES_DECISIONS, MESSAGES_DEFERRED, MESSAGES_OUTBOUND, dlq

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OutputTopics:
    """Names where the gate publishes: the contract's topics, or a test's private copies."""

    decisions: str = MESSAGES_DECISIONS
    outbound: str = MESSAGES_OUTBOUND
    # Where deferred requests come back when due (the gate reads it, too).
    releases: str = MESSAGES_DEFERRED


@dataclass
class Publication:
    """Holds what one batch publishes, in record order, and what it counts once published."""

    topics: OutputTopics = field(default_factory=OutputTopics)
    sends: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = field(
        default_factory=list
    )
    decided: list[DecisionRow] = field(default_factory=list)
    republished: int = 0
    duplicates: int = 0
    dead_lettered: list[str] = field(default_factory=list)

    def add(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self.sends.append((topic, key, value, headers or []))

    def publish_row(self, row: DecisionRow) -> None:
        key = (row.recipient or "").encode() or None
        headers = [("request_id", row.request_id.encode())]
        self.add(self.topics.decisions, key, row.decision_json, headers)
        if row.outbound_json is not None:
            self.add(self.topics.outbound, key, row.outbound_json, headers)

    def record_metrics(self) -> None:
        for reason in self.dead_lettered:
            metrics.DEAD_LETTERED.labels(reason).inc()
        for row in self.decided:
            metrics.DECISIONS.labels(row.decision, row.reason).inc()
        metrics.REPUBLISHED.inc(self.republished)
        metrics.DUPLICATES.inc(self.duplicates)


def plan_publication(
    parsed: list[Parsed],
    stored: dict[str, DecisionRow],
    new_rows: dict[str, DecisionRow],
    topics: OutputTopics,
    withheld: set[str] | None = None,
) -> Publication:
    """Plans every record's outputs: its DLQ copy when unusable, and its decision (with
    the send) once per request_id: a new one, or a stored one again for a redelivery."""
    outputs = Publication(topics)
    published = set(withheld or ())
    for record, p, request_id in parsed:
        if isinstance(p, Rejected):
            outputs.add(dlq(record.topic), record.key, record.value, dlq_headers(record, p))
            outputs.dead_lettered.append(p.reason)
        row = new_rows.get(request_id) if request_id else None
        redelivered = False
        if row is None and request_id in stored:
            row = stored[request_id]
            # The same record again means the transaction that carried its outputs
            # never committed: publish the stored decision (never a new one).
            redelivered = row.source_topic in (None, record.topic) and (
                row.source_partition,
                row.source_offset,
            ) == (record.partition, record.offset)
            if not redelivered:
                outputs.duplicates += 1
                log.info("duplicate request_id, already decided", request_id=request_id)
                continue
        if row is None or row.request_id in published:
            continue
        published.add(row.request_id)
        outputs.publish_row(row)
        if redelivered:
            outputs.republished += 1
        else:
            outputs.decided.append(row)
    return outputs
