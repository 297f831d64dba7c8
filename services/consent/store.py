"""Reads and writes the consent schema in PostgreSQL: events (append-only), subjects,
tracking."""

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from services.consent import metrics
from services.consent.columns import event_columns, subject_columns
from services.consent.suppressions import suppressed_among
from shared.consent.event_identity import Conflict, Recorded, conflicts, split_inserted
from shared.consent.fold import fold_onto, fold_subjects
from shared.consent.fold_plan import by_subject, plan_folds
from shared.consent.people import fold_people
from shared.consent.state import LoggedEvent, OrderKey, SubjectState
from shared.consent.suppression import (
    Suppression,
    identifiers_of,
    mark_erased,
    without_erased,
)
from shared.contract.events import ConsentEvent
from shared.pseudonyms import Pseudonymizer
from shared.topics import CONSENT_EVENTS

TRACKING_CHANNEL = "consent_tracking"

# The projector's statements (the rebuild upserts subjects with UPSERT_SUBJECTS too).
_INSERT_EVENTS_RETURNING_IDS = """
INSERT INTO consent.events
    (event_id, subject, type, occurred_at, log_time, topic, partition, "offset", clamped, payload,
     authenticated)
SELECT i, s, k, o, t, tp, p, f, c, j::jsonb, a FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],
    $6::text[], $7::int[], $8::bigint[], $9::bool[], $10::text[], $11::bool[]
) AS u(i, s, k, o, t, tp, p, f, c, j, a)
ON CONFLICT DO NOTHING
RETURNING event_id
"""

_RECORDED_WITH_IDS = """
SELECT event_id, payload::text AS payload, clamped, partition, "offset" FROM consent.events
WHERE event_id = ANY($1::text[])
"""

_LOCK_EVENTS = "LOCK TABLE consent.events IN ROW EXCLUSIVE MODE"

_LOCK_SUBJECTS = "SELECT pg_advisory_xact_lock(hashtextextended(s, 0)) FROM unnest($1::text[]) AS s"

_HISTORIES = """
SELECT subject, payload, log_time, partition, "offset", authenticated FROM consent.events
WHERE subject = ANY($1::text[])
"""

_STORED_STATES = """
SELECT subject, state::text AS state,
       through_occurred_at, through_log_time, through_partition, through_offset
FROM consent.subjects WHERE subject = ANY($1::text[])
"""

UPSERT_SUBJECTS = """
INSERT INTO consent.subjects AS s (subject, status, state, last_event_id, version,
    through_occurred_at, through_log_time, through_partition, through_offset, updated_at)
SELECT su, st, j::jsonb, l, v, o, t, p, f, now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[],
            $6::timestamptz[], $7::timestamptz[], $8::int[], $9::bigint[])
    AS u(su, st, j, l, v, o, t, p, f)
ON CONFLICT (subject) DO UPDATE SET
    status = EXCLUDED.status, state = EXCLUDED.state, last_event_id = EXCLUDED.last_event_id,
    version = EXCLUDED.version, through_occurred_at = EXCLUDED.through_occurred_at,
    through_log_time = EXCLUDED.through_log_time, through_partition = EXCLUDED.through_partition,
    through_offset = EXCLUDED.through_offset, updated_at = now()
"""

_INSERT_LINKS = """
INSERT INTO consent.identity_links (identifier, other, event_id)
SELECT a, b, e FROM unnest($1::text[], $2::text[], $3::text[]) AS u(a, b, e)
ON CONFLICT DO NOTHING
"""

# The identifiers connected to $1 through identity links, each with itself; UNION
# (not UNION ALL) ends the walk on cycles.
CONNECTED = """
WITH RECURSIVE connected(identifier) AS (
    SELECT DISTINCT identifier FROM consent.identity_links WHERE identifier = ANY($1::text[])
    UNION
    SELECT l.other FROM consent.identity_links l JOIN connected c ON l.identifier = c.identifier
)
SELECT identifier FROM connected
"""

_ADVANCE_TRACKING = """
INSERT INTO consent.tracking (topic, partition, next_offset)
SELECT $1, p, o FROM unnest($2::int[], $3::bigint[]) AS t(p, o)
ON CONFLICT (topic, partition) DO UPDATE SET
    next_offset = GREATEST(consent.tracking.next_offset, EXCLUDED.next_offset), updated_at = now()
"""


def to_logged(row: Any) -> LoggedEvent:
    return LoggedEvent(
        event=ConsentEvent.model_validate(row["payload"]),
        log_time=row["log_time"],
        partition=row["partition"],
        offset=row["offset"],
        authenticated=row["authenticated"],
    )


# Dead-letters the conflicts inside the transaction that skips them: the
# positions are only tracked once their DLQ copies are durable.
OnConflicts = Callable[[list[Conflict]], Awaitable[None]]


@dataclass(frozen=True)
class Folded:
    """Holds a subject's state and the order key of the latest event folded into it."""

    state: SubjectState
    through: OrderKey | None
    refolded: bool = True  # from the whole history; False: folded onto the stored state


def fold_rows(rows: Iterable[Any]) -> dict[str, Folded]:
    folded = fold_subjects(to_logged(row) for row in rows)
    return {s: Folded(state, through) for s, (state, through) in folded.items()}


async def tracking_positions(conn: Any, topic: str = CONSENT_EVENTS) -> dict[int, int]:
    """Reads consent.tracking: the next offset per partition; `conn` a pool or a connection."""
    rows = await conn.fetch(
        "SELECT partition, next_offset FROM consent.tracking WHERE topic = $1", topic
    )
    return {row["partition"]: row["next_offset"] for row in rows}


class ConsentStore:
    """`index` turns identifiers into the pseudonyms the suppression list is kept by
    (ERASURE_INDEX_KEY); a store that only reads (the API's) needs none."""

    def __init__(self, pool: Any, index: Pseudonymizer | None = None) -> None:
        self.pool = pool
        self.index = index

    async def tracking(self, topic: str) -> dict[int, int]:
        return await tracking_positions(self.pool, topic)

    async def apply(
        self,
        topic: str,
        events: Sequence[LoggedEvent],
        positions: dict[int, int],
        on_conflicts: OnConflicts | None = None,
    ) -> list[Folded]:
        """Writes the events, the subjects' new states and the tracking positions in ONE
        transaction: a redelivered batch is a no-op and a crash leaves nothing
        half-applied. An event whose event_id was recorded before with another
        payload is not applied and goes to `on_conflicts`. Returns the states
        written."""
        if self.index is None:
            raise RuntimeError("a store that applies events needs ERASURE_INDEX_KEY")
        async with self.pool.acquire() as conn, conn.transaction():
            fresh: list[LoggedEvent] = []
            folded: list[Folded] = []
            suppressed: dict[str, Suppression] = {}
            if events:
                # Before the suppression is read: an erasure committing now (it locks
                # the table) is then seen, and its person's past not written back.
                await conn.execute(_LOCK_EVENTS)
                suppressed = await suppressed_among(
                    conn, self.index, {i for e in events for i in identifiers_of(e)}
                )
                kept = without_erased(events, suppressed)
                if len(kept) < len(events):
                    metrics.EVENTS_ERASED.inc(len(events) - len(kept))
                # In log order, so that of two records with one event_id the first is kept.
                in_order = sorted(kept, key=LoggedEvent.log_key)
                rows = await conn.fetch(
                    _INSERT_EVENTS_RETURNING_IDS, *event_columns(topic, in_order)
                )
                fresh, repeated = split_inserted(in_order, {row["event_id"] for row in rows})
                found = await _conflicting(conn, repeated)
                if found and on_conflicts is not None:
                    await on_conflicts(found)
            if fresh:
                await _record_links(conn, fresh)
                folded = await _fold_fresh(conn, fresh)
                folded = await _marked_erased(conn, self.index, folded, suppressed)
                await conn.execute(UPSERT_SUBJECTS, *subject_columns(folded))
            await conn.execute(_ADVANCE_TRACKING, topic, list(positions), list(positions.values()))
            await conn.execute(f"NOTIFY {TRACKING_CHANNEL}")
            return folded

    async def advance(self, topic: str, positions: dict[int, int]) -> None:
        await self.pool.execute(_ADVANCE_TRACKING, topic, list(positions), list(positions.values()))

    async def subject(self, subject: str) -> SubjectState | None:
        row = await self.pool.fetchrow(
            "SELECT state FROM consent.subjects WHERE subject = $1", subject
        )
        return None if row is None else SubjectState.model_validate(row["state"])

    async def events(self, subjects: Sequence[str]) -> list[Any]:
        """Returns the stored events of `subjects` (one person's identifiers), in log order."""
        return list(
            await self.pool.fetch(
                """SELECT event_id, type, occurred_at, log_time, topic, partition, "offset",
                          clamped, payload
                   FROM consent.events WHERE subject = ANY($1::text[])
                   ORDER BY log_time, partition, "offset" """,
                list(subjects),
            )
        )


async def _marked_erased(
    conn: Any, index: Pseudonymizer, folded: list[Folded], known: dict[str, Suppression]
) -> list[Folded]:
    """Marks the states of erased people (shared/consent/suppression.py); the
    identifiers their states name beyond the batch's events are looked up too."""
    named = {i for f in folded for i in (f.state.subject, *f.state.identifiers)}
    suppressed = known | await suppressed_among(conn, index, named - known.keys())
    if not suppressed:
        return folded
    return [replace(f, state=mark_erased(f.state, suppressed)) for f in folded]


async def _record_links(conn: Any, fresh: Sequence[LoggedEvent]) -> None:
    edges = [
        (logged.event.subject, other, logged.event.event_id)
        for logged in fresh
        if (other := logged.event.other_identifier) is not None
    ]
    if edges:
        both_ways = edges + [(b, a, e) for a, b, e in edges]
        await conn.execute(
            _INSERT_LINKS, *(list(column) for column in zip(*both_ways, strict=True))
        )


async def _fold_fresh(conn: Any, fresh: Sequence[LoggedEvent]) -> list[Folded]:
    """Locks the subjects `fresh` (just inserted) is about, loads what `plan_folds`
    needs and returns their new states. Subjects linked to others are folded with
    all their identifiers (`_fold_linked`)."""
    new_events = by_subject(fresh)
    for logged in fresh:
        if (other := logged.event.other_identifier) is not None:
            new_events.setdefault(other, [])
    # Another instance may fold a subject at once (its events in our partition too):
    # per-subject locks, in one order, make each see the other's commit. Taken
    # before the links are read: a link another instance is committing holds these
    # locks until it has, so it is seen below rather than missed (an opt-out would
    # else be folded onto one identifier of a person alone).
    await conn.execute(_LOCK_SUBJECTS, sorted(new_events))
    linked = await _fold_linked(conn, sorted(new_events))
    for identifier in linked:
        new_events.pop(identifier, None)
    new_events = {s: events for s, events in new_events.items() if events}
    subjects = sorted(new_events)
    stored = {row["subject"]: row for row in await conn.fetch(_STORED_STATES, subjects)}
    fold_on, refold = plan_folds({s: _through(row) for s, row in stored.items()}, new_events)
    folded = [
        Folded(
            fold_onto(SubjectState.model_validate_json(stored[s]["state"]), on.events),
            on.through,
            False,
        )
        for s, on in fold_on.items()
    ]
    if refold:
        folded.extend(fold_rows(await conn.fetch(_HISTORIES, refold)).values())
    return folded + list(linked.values())


async def _fold_linked(conn: Any, subjects: list[str]) -> dict[str, Folded]:
    """Folds again every identifier connected to one of `subjects` by identity links,
    from the histories of them all; returns their states (none: no subject is linked).

    The locks are taken on the connected set as found, and the set is read again
    under them until it stops growing: a link another instance commits meanwhile
    joins this fold rather than being missed by it."""
    connected: list[str] = []
    while True:
        found = sorted({row["identifier"] for row in await conn.fetch(CONNECTED, subjects)})
        if found == connected:
            break
        locked = set(connected)
        await conn.execute(_LOCK_SUBJECTS, [s for s in found if s not in locked])
        connected = found
    if not connected:
        return {}
    people = fold_people(to_logged(row) for row in await conn.fetch(_HISTORIES, connected))
    folded = {}
    for identifier in connected:
        state, through = people.get(identifier, (SubjectState(subject=identifier), None))
        folded[identifier] = Folded(state, through)
    return folded


async def _conflicting(conn: Any, repeated: Sequence[LoggedEvent]) -> list[Conflict]:
    """Returns the records not inserted whose event_id the table holds with another payload
    (the table, in this transaction, holds the ones just inserted too)."""
    if not repeated:
        return []
    ids = sorted({e.event.event_id for e in repeated})
    recorded = {
        row["event_id"]: Recorded(
            ConsentEvent.model_validate_json(row["payload"]),
            row["clamped"],
            row["partition"],
            row["offset"],
        )
        for row in await conn.fetch(_RECORDED_WITH_IDS, ids)
    }
    return conflicts(repeated, recorded)


def _through(row: Any) -> OrderKey | None:
    if row["through_occurred_at"] is None:
        return None
    return (
        row["through_occurred_at"],
        row["through_log_time"],
        row["through_partition"],
        row["through_offset"],
    )
