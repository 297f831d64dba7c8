"""What an erasure leaves of a person: the fact that they objected, per identifier
(docs/erasure.md, section 5). Pure: the store finds the suppressions by pseudonym and
hands them here by identifier.

Two rules keep an erased person erased and unmessaged:
- a record appended before the erasure was carried out is the person's erased past:
  a lagging projector or a rebuild that meets it again drops it, so their data is
  not written back;
- a record appended after it is new, and is folded, but the state it gives is marked
  with the erasure, so that nothing (a producer's old grant sent again included)
  can make the gate send to them."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.consent.state import LoggedEvent, SubjectState
from shared.contract.events import IDENTITY_TYPES


@dataclass(frozen=True, slots=True)
class Suppression:
    erasure_event_id: str
    requested_at: datetime
    erased_at: datetime


def identifiers_of(logged: LoggedEvent) -> tuple[str, ...]:
    other = logged.event.other_identifier
    return (logged.event.subject,) if other is None else (logged.event.subject, other)


def erased_before(logged: LoggedEvent, suppressed: Mapping[str, Suppression]) -> bool:
    """Whether the record belongs to an erasure's past: it names an erased identifier
    and the broker appended it before that erasure was carried out. Never a link
    (IdentityLinked, IdentifierChanged): one the erasure did not see joins another
    identifier to the person, and applying it marks that one too, so that the next
    round of the erasure job erases both."""
    if logged.event.type in IDENTITY_TYPES:
        return False
    return any(
        (s := suppressed.get(identifier)) is not None and logged.log_time < s.erased_at
        for identifier in identifiers_of(logged)
    )


def without_erased(
    events: Sequence[LoggedEvent], suppressed: Mapping[str, Suppression]
) -> list[LoggedEvent]:
    """The events to keep, in their order: all of them when nobody is suppressed."""
    if not suppressed:
        return list(events)
    return [e for e in events if not erased_before(e, suppressed)]


def suppression_of(
    state: SubjectState, suppressed: Mapping[str, Suppression]
) -> Suppression | None:
    """The erasure that covers the person this state belongs to: of any of their
    identifiers, the earliest carried out."""
    found = [
        s for identifier in (state.subject, *state.identifiers) if (s := suppressed.get(identifier))
    ]
    return min(found, key=lambda s: (s.erased_at, s.erasure_event_id), default=None)


def mark_erased(state: SubjectState, suppressed: Mapping[str, Suppression]) -> SubjectState:
    """The state as the gate must see it: stopped by the erasure that covers the person,
    whatever was folded since. A state that names an erasure already keeps its own."""
    if state.erasure_event_id is not None or not suppressed:
        return state
    covering = suppression_of(state, suppressed)
    if covering is None:
        return state
    return state.model_copy(
        update={
            "erasure_event_id": covering.erasure_event_id,
            "erasure_requested_at": covering.requested_at,
        }
    )
