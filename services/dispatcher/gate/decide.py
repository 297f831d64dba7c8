"""The gate's pure core parses a batch of send requests once, then decides once per
request_id on the states, the fence and the dispatcher's own facts read for it. No
I/O: the records are only read for their values and positions."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

import orjson
from aiokafka import ConsumerRecord

from services.dispatcher.gate.cloud_api_body import cloud_api_body
from services.dispatcher.gate.store import DecisionRow
from shared.consent.state import SubjectState
from shared.contract.decisions import Decision, DispatchDecision, Reason
from shared.contract.requests import (
    SendRequest,
    parse_send_request,
    salvage_purpose,
    salvage_request_id,
)
from shared.contract.storable import cleaned
from shared.dispatch.facts import DispatchFacts
from shared.dispatch.quiet_hours import QuietHoursPolicy
from shared.dispatch.rules import FrequencyPolicy, decide_send
from shared.dispatch.timing import ALWAYS_OPEN, decide_in_time
from shared.rejection import Rejected


class Parsed(NamedTuple):
    """Holds a record of the batch, parsed once, and the request_id it is decided under
    (None: it has no usable one, and goes to the DLQ only)."""

    record: ConsumerRecord
    request: SendRequest | Rejected
    request_id: str | None


def parse_batch(batch: list[ConsumerRecord]) -> list[Parsed]:
    parsed = []
    for record in batch:
        request = parse_send_request(record.value)
        if isinstance(request, SendRequest):
            parsed.append(Parsed(record, request, request.request_id))
        else:
            parsed.append(Parsed(record, request, salvage_request_id(record.value)))
    return parsed


def decide_batch(
    fresh: Sequence[Parsed],
    states: Mapping[str, SubjectState],
    facts: DispatchFacts,
    now: datetime,
    frequency: FrequencyPolicy,
    fence: Mapping[int, int],
    quiet_hours: QuietHoursPolicy = ALWAYS_OPEN,
    deferred: Mapping[str, datetime] | None = None,
) -> dict[str, DecisionRow]:
    """Decides each request_id of `fresh` once, in record order, on the facts as of
    `now`, each decision folded into them before the next (`facts` is left as is).

    `deferred` maps the request_ids of `fresh` that were deferred before (their
    release is due) to that deferral's decided_at: their rows replace it."""
    deferred = deferred or {}
    facts = facts.copy()
    fence_json = {str(p): o for p, o in sorted(fence.items())}
    rows: dict[str, DecisionRow] = {}
    for request_id, (record, p, _) in _in_audit_order(fresh):
        if isinstance(p, Rejected):
            rows[request_id] = invalid_row(
                record, request_id, p, now, fence_json, replaces=deferred.get(request_id)
            )
            continue
        state = states.get(p.recipient)
        identifiers = state.identifiers if state is not None else ()
        verdict = decide_send(state, p, facts.for_request(p, now, identifiers), now, frequency)
        verdict = decide_in_time(verdict, p, quiet_hours, now, state.timezone if state else None)
        decision = DispatchDecision.on(
            p,
            verdict.decision,
            verdict.reason,
            now,
            consent_event_id=verdict.consent_event_id,
            detail=verdict.detail,
            fence=fence_json,
            not_before=verdict.not_before,
        )
        facts.record(decision)
        outbound = (
            orjson.dumps(cloud_api_body(p)) if verdict.decision is Decision.DISPATCHED else None
        )
        waiting = record.value if verdict.decision is Decision.DEFERRED else None
        rows[request_id] = decision_row(
            decision, record, outbound, request_json=waiting, replaces=deferred.get(request_id)
        )
    return rows


def _in_audit_order(fresh: Sequence[Parsed]) -> list[tuple[str, Parsed]]:
    """Returns the requests to decide, one per request_id (the first in record order;
    none without an id: DLQ only), by recipient, each recipient's in record order.

    A person's identifiers key different partitions, so the audit cannot know the
    record order of one batch's requests to two of them; it orders a batch's
    decisions by recipient, and so does the gate: the frequency cap, counted per
    person, then comes out the same in both."""
    first: dict[str, Parsed] = {}
    for parsed in fresh:
        if parsed.request_id is not None:
            first.setdefault(parsed.request_id, parsed)
    return sorted(first.items(), key=_recipient)


def _recipient(item: tuple[str, Parsed]) -> str:
    request = item[1].request
    return request.recipient if isinstance(request, SendRequest) else ""


def decision_row(
    decision: DispatchDecision,
    record: ConsumerRecord,
    outbound: bytes | None,
    *,
    request_json: bytes | None = None,
    replaces: datetime | None = None,
) -> DecisionRow:
    """Builds the row that stores `decision` and the record values it publishes."""
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
        source_topic=record.topic,
        not_before=decision.not_before,
        request_json=request_json,
        replaces=replaces,
    )


def invalid_row(
    record: ConsumerRecord,
    request_id: str,
    rejected: Rejected,
    now: datetime,
    fence: dict[str, int],
    *,
    replaces: datetime | None = None,
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
    return decision_row(decision, record, None, replaces=replaces)
