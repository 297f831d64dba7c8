"""A batch of send requests as read (each record parsed once, with its request_id)
and what it publishes: each record's DLQ copy when it is unusable, and its decision
(with the send when dispatched) once per request_id, as the rows PostgreSQL
records and the records Kafka carries."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import structlog
from aiokafka import ConsumerRecord

from services.dispatcher import metrics
from services.dispatcher.store import DecisionRow
from shared.contract.decisions import Decision, DispatchDecision, Reason
from shared.contract.requests import (
    SendRequest,
    parse_send_request,
    salvage_purpose,
    salvage_request_id,
)
from shared.contract.storable import cleaned
from shared.kafka.dlq import dlq_headers
from shared.rejection import Rejected
from shared.topics import DISPATCH_DECISIONS, MESSAGES_OUTBOUND, dlq

log = structlog.get_logger(__name__)


@dataclass
class Outputs:
    """What one batch publishes, in record order, and what it counts once published."""

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
        self.add(DISPATCH_DECISIONS, key, row.decision_json, headers)
        if row.outbound_json is not None:
            self.add(MESSAGES_OUTBOUND, key, row.outbound_json, headers)

    def count(self) -> None:
        for reason in self.dead_lettered:
            metrics.DEAD_LETTERED.labels(reason).inc()
        for row in self.decided:
            metrics.DECISIONS.labels(row.decision, row.reason).inc()
        metrics.REPUBLISHED.inc(self.republished)
        metrics.DUPLICATES.inc(self.duplicates)


class Parsed(NamedTuple):
    """A record of the batch, parsed once, and the request_id it is decided under
    (None: it has no usable one, and goes to the DLQ only)."""

    record: ConsumerRecord
    request: SendRequest | Rejected
    request_id: str | None


def parsed_batch(batch: list[ConsumerRecord]) -> list[Parsed]:
    parsed = []
    for record in batch:
        request = parse_send_request(record.value)
        if isinstance(request, SendRequest):
            parsed.append(Parsed(record, request, request.request_id))
        else:
            parsed.append(Parsed(record, request, salvage_request_id(record.value)))
    return parsed


def routed(
    parsed: list[Parsed],
    stored: dict[str, DecisionRow],
    new_rows: dict[str, DecisionRow],
    withheld: set[str] | None = None,
) -> Outputs:
    """Every record's outputs: its DLQ copy when unusable, and its decision (with the
    send) once per request_id: a new one, or a stored one again for a redelivery."""
    outputs = Outputs()
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
            redelivered = (row.source_partition, row.source_offset) == (
                record.partition,
                record.offset,
            )
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


def decision_row(
    decision: DispatchDecision, record: ConsumerRecord, outbound: bytes | None
) -> DecisionRow:
    return DecisionRow(
        request_id=decision.request_id,
        recipient=decision.recipient,
        purpose=decision.purpose,
        decision=decision.decision.value,
        reason=decision.reason.value,
        consent_event_id=decision.consent_event_id,
        opt_out_event_id=decision.opt_out_event_id,
        decided_at=decision.decided_at,
        source_partition=record.partition,
        source_offset=record.offset,
        decision_json=decision.model_dump_json().encode(),
        outbound_json=outbound,
    )


def invalid_row(
    record: ConsumerRecord,
    request_id: str,
    rejected: Rejected,
    now: datetime,
    fence: dict[str, int],
) -> DecisionRow:
    # Copies for information only, from a request that failed validation: made storable.
    recipient = cleaned(record.key.decode(errors="replace")) if record.key else None
    decision = DispatchDecision(
        request_id=request_id,
        recipient=recipient,
        purpose=cleaned(salvage_purpose(record.value)),
        decision=Decision.DROPPED,
        reason=Reason.INVALID_REQUEST,
        decided_at=now,
        detail=cleaned(f"{rejected.reason}: {rejected.detail}"),
        fence=fence,
    )
    return decision_row(decision, record, None)
