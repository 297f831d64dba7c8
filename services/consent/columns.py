"""Lays out the projection's rows as the column arrays that `unnest` inserts in one statement
(the projector per batch, the rebuild per million)."""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shared.consent.state import LoggedEvent

if TYPE_CHECKING:
    from services.consent.store import Folded


def event_columns(topic: str, events: Sequence[LoggedEvent]) -> list[list[Any]]:
    # Enum members and JSON text as they are: asyncpg takes a str subclass as text,
    # and PostgreSQL parses the JSON (the rebuild writes millions of these).
    return [
        [e.event.event_id for e in events],
        [e.event.subject for e in events],
        [e.event.type for e in events],
        [e.event.occurred_at for e in events],
        [e.log_time for e in events],
        [topic] * len(events),
        [e.partition for e in events],
        [e.offset for e in events],
        [e.clamped for e in events],
        [e.event.model_dump_json() for e in events],
        [e.authenticated for e in events],
    ]


def subject_columns(folded: Sequence["Folded"]) -> list[list[Any]]:
    throughs = [f.through for f in folded]
    return [
        [f.state.subject for f in folded],
        [f.state.status for f in folded],
        [f.state.model_dump_json() for f in folded],
        [f.state.last_event_id for f in folded],
        [f.state.version for f in folded],
        *([None if t is None else t[i] for t in throughs] for i in range(4)),
    ]
