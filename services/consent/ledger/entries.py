"""Turns a source record into what its ledger keeps (shared/ledger/entries.py): the
record as accepted, to seal, and the facts that are not personal, in clear."""

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from shared.consent.authenticity import Trust
from shared.consent.logged_record import logged_event
from shared.consent.state import LoggedEvent
from shared.consent.suppression import identifiers_of
from shared.contract.decisions import DispatchDecision
from shared.contract.events import ConsentEvent
from shared.contract.purposes import OPT_OUT_CONFIRMATION, permitted_purpose
from shared.identifiers import normalize_identifier
from shared.kafka.log_order import broker_time
from shared.ledger.entries import LedgerEntry, Sealable
from shared.phone import InvalidPhoneNumberError

# A decision without a usable recipient names nobody the system can find: it is
# sealed under the data key of this empty identifier, which no erasure deletes.
NOBODY = ""


def event_sealable(record: ConsumerRecord, trust: Trust) -> Sealable | None:
    """The event as the projector accepts it (canonical, judged, clamped); None for a
    record the projector dead-letters, which its DLQ holds instead."""
    logged = logged_event(record, trust)
    if not isinstance(logged, LoggedEvent):
        return None
    event = logged.event
    return Sealable(
        kind="event",
        partition=record.partition,
        offset=record.offset,
        log_time=logged.log_time,
        facts={
            "type": event.type.value,
            "occurred_at": event.occurred_at.isoformat(),
            "authenticated": logged.authenticated,
            "clamped": logged.clamped,
        },
        identifiers=identifiers_of(logged),
        content=event.model_dump_json().encode(),
    )


def logged_from(entry: LedgerEntry, content: bytes) -> LoggedEvent:
    """The event an opened entry holds, placed where the log had it."""
    return LoggedEvent(
        ConsentEvent.model_validate_json(content),
        entry.log_time,
        entry.partition,
        entry.offset,
        clamped=entry.facts.get("clamped") is True,
        authenticated=entry.facts.get("authenticated") is not False,
    )


def decision_sealable(record: ConsumerRecord) -> Sealable | None:
    """The decision exactly as published; None for a record that is not one (the
    gate writes only decisions: such a record is counted, never sealed)."""
    if record.value is None:
        return None
    try:
        decision = DispatchDecision.model_validate_json(record.value)
    except ValidationError:
        return None
    return Sealable(
        kind="decision",
        partition=record.partition,
        offset=record.offset,
        log_time=broker_time(record),
        facts={
            "decision": decision.decision.value,
            "reason": decision.reason.value,
            "purpose": _known(decision.purpose),
            "decided_at": decision.decided_at.isoformat(),
        },
        identifiers=(_recipient(decision.recipient),),
        content=record.value,
    )


def _known(purpose: str | None) -> str | None:
    # A purpose is free text on an invalid request (salvaged from its body): only
    # the contract's own names stay in clear, for ever; anything else may hold a
    # number and is only in the sealed content.
    if purpose is None:
        return None
    return purpose if permitted_purpose(purpose) or purpose == OPT_OUT_CONFIRMATION else "other"


def _recipient(recipient: str | None) -> str:
    """The recipient as the erasure knows them (normalised), or NOBODY: a recipient
    that does not parse is an identifier no erasure could name."""
    if recipient is None:
        return NOBODY
    try:
        return normalize_identifier(recipient)
    except InvalidPhoneNumberError:
        return NOBODY
