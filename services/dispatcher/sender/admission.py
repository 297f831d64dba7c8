"""Decides which records of messages.outbound.v1 the sender may POST: usable ones that are
exactly what the gate dispatched (docs/sender.md). Pure: SendStore reads the
gate's decisions, the Sender acts on the verdicts."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from aiokafka import ConsumerRecord

from shared.contract.decisions import Decision
from shared.contract.storable import NUL, cleaned
from shared.rejection import Rejected, decode_json_object

NO_DISPATCH_DECISION = "no_dispatch_decision"


@dataclass(frozen=True, slots=True)
class GateDecision:
    """Holds a row of dispatcher.decisions, as far as the sender checks it; `outbound`
    is the Cloud API body the gate published, parsed (None unless dispatched)."""

    decision: str
    reason: str
    recipient: str | None
    outbound: Any


class Admitted(NamedTuple):
    record: ConsumerRecord
    request_id: str
    recipient: str | None


class Refused(NamedTuple):
    """A refused record is dead-lettered, never POSTed, and not recorded in
    dispatcher.sends: that row belongs to the body the gate dispatched under the
    request_id, and a refused record claiming it would make the sender skip the real
    one as already done."""

    record: ConsumerRecord
    rejected: Rejected
    outcome: str  # the label of dispatcher_sender_sends_total


def request_id_of(record: ConsumerRecord) -> str | None:
    for key, value in record.headers or ():
        if key == "request_id" and value:
            return bytes(value).decode(errors="replace")
    return None


def lookup_ids(batch: Iterable[ConsumerRecord]) -> list[str]:
    """Returns the batch's request_ids a query can carry (PostgreSQL refuses U+0000 in text)."""
    ids = {request_id_of(record) for record in batch}
    return sorted(i for i in ids if i is not None and NUL not in i)


def admit(record: ConsumerRecord, decisions: Mapping[str, GateDecision]) -> Admitted | Refused:
    request_id = request_id_of(record)
    if request_id is None:
        missing = Rejected(reason="missing_request_id", detail="no request_id header")
        return Refused(record, missing, "invalid")
    if NUL in request_id:  # not storable: the sends table could never record it
        unusable = Rejected(reason="invalid_request_id", detail="request_id holds U+0000 (NUL)")
        return Refused(record, unusable, "invalid")
    body = decode_json_object(record.value)
    if isinstance(body, Rejected):
        return Refused(record, body, "invalid")
    recipient = cleaned(record.key.decode(errors="replace")) if record.key else None
    why = not_dispatched(decisions.get(request_id), recipient, body)
    if why is not None:
        return Refused(record, Rejected(reason=NO_DISPATCH_DECISION, detail=why), "not_dispatched")
    return Admitted(record, request_id, recipient)


def not_dispatched(
    decision: GateDecision | None, recipient: str | None, body: dict[str, Any]
) -> str | None:
    """Returns None when the gate dispatched this body to this recipient; else which differs."""
    if decision is None:
        return "the dispatcher recorded no decision for this request_id"
    if decision.decision != Decision.DISPATCHED:
        return (
            f"the dispatcher's decision for this request_id is {decision.decision}"
            f" ({decision.reason}), not dispatched"
        )
    if decision.recipient != recipient:
        return "the dispatcher dispatched this request_id to another recipient than the key"
    if not same_json(decision.outbound, body):
        return "the dispatcher dispatched this request_id with another body than the value"
    return None


def same_json(a: Any, b: Any) -> bool:
    """Tells whether `a` and `b` are equal as JSON values, whatever the key order and
    spacing (jsonb rewrites both). Iterative: a body nested deeper than Python's
    recursion limit must not fail the batch on every retry."""
    pending = [(a, b)]
    while pending:
        x, y = pending.pop()
        if isinstance(x, dict):
            if not isinstance(y, dict) or x.keys() != y.keys():
                return False
            pending.extend((value, y[key]) for key, value in x.items())
        elif isinstance(x, list):
            if not isinstance(y, list) or len(x) != len(y):
                return False
            pending.extend(zip(x, y, strict=True))
        elif isinstance(x, bool) or isinstance(y, bool):
            if x is not y:  # to Python's ==, true is 1
                return False
        elif isinstance(x, float) or isinstance(y, float):
            # jsonb prints 1.152921504606847e+18 as 1152921504606847000, which reads
            # back as an int that is not exactly the float it stands for.
            if not isinstance(x, int | float) or not isinstance(y, int | float):
                return False
            if float(x) != float(y):
                return False
        elif x != y:
            return False
    return True
