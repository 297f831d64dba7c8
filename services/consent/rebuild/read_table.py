"""Reads consent.events (the projector's copy of the log) into subject states."""

from collections.abc import Collection
from typing import Any

from services.consent.rebuild.rebuilt import CHUNK, Rebuilt, cyclic_gc_paused, progress_bar
from services.consent.store import CONNECTED, to_logged, tracking_positions
from services.consent.suppressions import suppression_list
from shared.consent.state import LoggedEvent
from shared.identifiers import normalize_identifier
from shared.pseudonyms import Pseudonymizer
from shared.topics import CONSENT_EVENTS


async def rebuild_states_from_table(
    conn: Any,
    *,
    topic: str = CONSENT_EVENTS,
    subjects: Collection[str] | None = None,
    progress: bool = False,
    index: Pseudonymizer | None = None,
) -> Rebuilt:
    """Folds consent.events. Must run inside a transaction (the cursor needs one);
    REPEATABLE READ makes the events, the tracking, the suppression list and any
    later read one snapshot. With `index`, erased people's states are marked as the
    projector marks them (their past is not in the table any more)."""
    scope = None
    if subjects is not None:
        # A person's fold needs the histories of all their identifiers.
        asked = sorted({normalize_identifier(s) for s in subjects})
        linked = {row["identifier"] for row in await conn.fetch(CONNECTED, asked)}
        scope = frozenset(asked) | linked
    rebuilt = Rebuilt("table", topic, await tracking_positions(conn, topic), scope=scope)
    where = "topic = $1 AND ($2::text[] IS NULL OR subject = ANY($2::text[]))"
    args = (topic, sorted(scope) if scope is not None else None)
    total = await conn.fetchval(f"SELECT count(*) FROM consent.events WHERE {where}", *args)
    events: list[LoggedEvent] = []
    query = (
        'SELECT subject, payload, log_time, partition, "offset", authenticated '
        f"FROM consent.events WHERE {where}"
    )
    with cyclic_gc_paused(), progress_bar(total, progress, "table") as bar:
        async for row in conn.cursor(query, *args, prefetch=CHUNK):
            events.append(to_logged(row))
            rebuilt.records += 1
            bar.update()
        suppressed = (await suppression_list(conn, index)).among(events) if index else {}
        rebuilt.fold(rebuilt.drop_erased(events, suppressed), suppressed)
    return rebuilt
