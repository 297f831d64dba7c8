"""The consent schema in PostgreSQL: events (append-only), subjects, tracking."""

from collections.abc import Iterable, Sequence
from typing import Any

from shared.consent.fold import fold_subjects
from shared.consent.state import LoggedEvent, SubjectState
from shared.contract.events import ConsentEvent
from shared.topics import CONSENT_EVENTS

TRACKING_CHANNEL = "consent_tracking"

# The projector's statements; the rebuild writes with them too.
INSERT_EVENTS = """
INSERT INTO consent.events
    (event_id, subject, type, occurred_at, log_time, topic, partition, "offset", clamped, payload)
SELECT * FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],
    $6::text[], $7::int[], $8::bigint[], $9::bool[], $10::jsonb[])
ON CONFLICT DO NOTHING
"""
_INSERT_EVENTS_RETURNING_SUBJECTS = INSERT_EVENTS + "RETURNING subject\n"

_LOCK_SUBJECTS = "SELECT pg_advisory_xact_lock(hashtextextended(s, 0)) FROM unnest($1::text[]) AS s"

_HISTORIES = """
SELECT subject, payload, log_time, partition, "offset" FROM consent.events
WHERE subject = ANY($1::text[])
"""

UPSERT_SUBJECTS = """
INSERT INTO consent.subjects (subject, status, state, last_event_id, version, updated_at)
SELECT s, st, j, l, v, now()
FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::text[], $5::int[]) AS t(s, st, j, l, v)
ON CONFLICT (subject) DO UPDATE SET
    status = EXCLUDED.status, state = EXCLUDED.state, last_event_id = EXCLUDED.last_event_id,
    version = EXCLUDED.version, updated_at = now()
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
    )


def fold_rows(rows: Iterable[Any]) -> dict[str, SubjectState]:
    return fold_subjects(to_logged(row) for row in rows)


async def tracking_positions(conn: Any, topic: str = CONSENT_EVENTS) -> dict[int, int]:
    """consent.tracking: the next offset per partition; `conn` a pool or a connection."""
    rows = await conn.fetch(
        "SELECT partition, next_offset FROM consent.tracking WHERE topic = $1", topic
    )
    return {row["partition"]: row["next_offset"] for row in rows}


class ConsentStore:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def tracking(self, topic: str) -> dict[int, int]:
        return await tracking_positions(self.pool, topic)

    async def apply(
        self, topic: str, events: Sequence[LoggedEvent], positions: dict[int, int]
    ) -> int:
        """Events, the refolded subjects and the tracking positions in ONE transaction:
        a redelivered batch is a no-op and a crash leaves nothing half-applied."""
        async with self.pool.acquire() as conn, conn.transaction():
            touched: set[str] = set()
            if events:
                inserted = await conn.fetch(
                    _INSERT_EVENTS_RETURNING_SUBJECTS, *event_columns(topic, events)
                )
                touched = {row["subject"] for row in inserted}
            if touched:
                # Another instance may refold a subject at once (its events in our partition too):
                # per-subject locks, in one order, make each refold see the other's commit.
                await conn.execute(_LOCK_SUBJECTS, sorted(touched))
                states = fold_rows(await conn.fetch(_HISTORIES, list(touched)))
                await conn.execute(UPSERT_SUBJECTS, *subject_columns(states.values()))
            await conn.execute(_ADVANCE_TRACKING, topic, list(positions), list(positions.values()))
            await conn.execute(f"NOTIFY {TRACKING_CHANNEL}")
            return len(touched)

    async def advance(self, topic: str, positions: dict[int, int]) -> None:
        await self.pool.execute(_ADVANCE_TRACKING, topic, list(positions), list(positions.values()))

    async def subject(self, subject: str) -> SubjectState | None:
        row = await self.pool.fetchrow(
            "SELECT state FROM consent.subjects WHERE subject = $1", subject
        )
        return None if row is None else SubjectState.model_validate(row["state"])

    async def events(self, subject: str) -> list[Any]:
        return list(
            await self.pool.fetch(
                """SELECT event_id, type, occurred_at, log_time, topic, partition, "offset",
                          clamped, payload
                   FROM consent.events WHERE subject = $1
                   ORDER BY log_time, partition, "offset" """,
                subject,
            )
        )


def event_columns(topic: str, events: Sequence[LoggedEvent]) -> list[list[Any]]:
    return [
        [e.event.event_id for e in events],
        [e.event.subject for e in events],
        [e.event.type.value for e in events],
        [e.event.occurred_at for e in events],
        [e.log_time for e in events],
        [topic] * len(events),
        [e.partition for e in events],
        [e.offset for e in events],
        [e.clamped for e in events],
        [e.event.model_dump(mode="json") for e in events],
    ]


def subject_columns(states: Iterable[SubjectState]) -> list[list[Any]]:
    listed = list(states)
    return [
        [s.subject for s in listed],
        [s.status.value for s in listed],
        [s.model_dump(mode="json") for s in listed],
        [s.last_event_id for s in listed],
        [s.version for s in listed],
    ]
