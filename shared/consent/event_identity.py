"""Tells what a second record carrying an event_id the log has already recorded is:
a redelivery of the same event (a silent no-op), or another event reusing the id
(refused: an OptedOut that reuses a grant's id must never vanish unseen)."""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter

from shared.consent.state import LoggedEvent
from shared.contract.events import ConsentEvent
from shared.kafka.log_order import first_per_id

event_id_of = attrgetter("event.event_id")


@dataclass(frozen=True)
class Recorded:
    """Describes an event as the events table holds it: the first record of its event_id."""

    event: ConsentEvent
    clamped: bool
    partition: int
    offset: int


@dataclass(frozen=True)
class Conflict:
    """Names a record whose event_id the log recorded first with another payload."""

    again: LoggedEvent
    first_partition: int
    first_offset: int


def is_redelivery(
    first: ConsentEvent, first_clamped: bool, again: ConsentEvent, again_clamped: bool
) -> bool:
    """Tells whether `again` is the same event as `first`. Both are as recorded, with
    occurred_at clamped to their own broker timestamps: when both were clamped,
    their original instants are unknown and only the other fields can differ."""
    if first_clamped and again_clamped:
        return first.model_copy(update={"occurred_at": again.occurred_at}) == again
    return first == again


def split_inserted(
    events: Sequence[LoggedEvent], inserted: Collection[str]
) -> tuple[list[LoggedEvent], list[LoggedEvent]]:
    """Splits `events` as an insert that kept the ids `inserted` left them: the records
    it stored (per inserted id, its first in log order), and all the others."""
    first = first_per_id(events, event_id_of)
    fresh = [logged for event_id, logged in first.items() if event_id in inserted]
    kept = {id(logged) for logged in fresh}
    return fresh, [logged for logged in events if id(logged) not in kept]


def conflicts(repeated: Sequence[LoggedEvent], recorded: Mapping[str, Recorded]) -> list[Conflict]:
    """Returns the records of `repeated` that are not redeliveries of the event
    `recorded` holds under their event_id."""
    found = []
    for again in repeated:
        first = recorded[again.event.event_id]
        if not is_redelivery(first.event, first.clamped, again.event, again.clamped):
            found.append(Conflict(again, first.partition, first.offset))
    return found
