"""Verifies a rebuild: its states compared, as SubjectState models, with
consent.subjects once both have seen the same log positions."""

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.consent.rebuild.rebuilt import CHUNK, RebuildRefusedError, Rebuilt
from services.consent.store import tracking_positions
from shared.consent.state import SubjectState
from shared.identifiers import mask_identifier


@dataclass
class Verification:
    equal: int = 0
    differing: dict[str, str] = field(default_factory=dict)  # subject -> what differs
    skipped: set[str] = field(default_factory=set)  # moved on past the compared positions

    @property
    def ok(self) -> bool:
        return not self.differing

    def report(self, limit: int = 50) -> str:
        lines = [
            f"verify: {self.equal} subjects equal, {len(self.differing)} differ, "
            f"{len(self.skipped)} skipped (the projector moved past the positions compared)"
        ]
        for subject, what in sorted(self.differing.items())[:limit]:
            lines.append(f"  {mask_identifier(subject)}: {what}")
        if len(self.differing) > limit:
            lines.append(f"  ... and {len(self.differing) - limit} more")
        return "\n".join(lines)


async def verify_rebuilt(pool: Any, rebuilt: Rebuilt, *, timeout: float = 60.0) -> Verification:
    """Compares a rebuild from the log with consent.subjects once the projection
    has reached the same positions."""
    await wait_for_tracking(pool, rebuilt.topic, rebuilt.positions, timeout)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        return await compare_with_table(conn, rebuilt)


async def wait_for_tracking(
    pool: Any, topic: str, positions: Mapping[int, int], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        tracked = await tracking_positions(pool, topic)
        behind = {p: (tracked.get(p, 0), o) for p, o in positions.items() if tracked.get(p, 0) < o}
        if not behind:
            return
        if time.monotonic() >= deadline:
            raise RebuildRefusedError(
                f"consent.tracking did not reach the log's end offsets in {timeout:.0f}s "
                f"(partition: (tracked, end) {behind}): is the consent service running?"
            )
        await asyncio.sleep(0.2)


async def compare_with_table(conn: Any, rebuilt: Rebuilt) -> Verification:
    """Compares `rebuilt` with consent.subjects; must run inside one snapshot. A subject
    the projector has events for past `rebuilt.positions` is skipped: the two sides saw
    different histories."""
    query = "SELECT subject, state FROM consent.subjects"
    args: tuple[Any, ...] = ()
    if rebuilt.scope is not None:
        query += " WHERE subject = ANY($1::text[])"
        args = (sorted(rebuilt.scope),)
    result = Verification()
    seen: set[str] = set()
    async for row in conn.cursor(query, *args, prefetch=CHUNK):
        subject = row["subject"]
        seen.add(subject)
        live = SubjectState.model_validate(row["state"])
        expected = rebuilt.states.get(subject)
        if expected is None:
            result.differing[subject] = "in consent.subjects, absent from the rebuild"
        elif live == expected:
            result.equal += 1
        else:
            fields = [
                n for n in SubjectState.model_fields if getattr(live, n) != getattr(expected, n)
            ]
            result.differing[subject] = "differs in " + ", ".join(fields)
    for subject in rebuilt.states.keys() - seen:
        result.differing[subject] = "rebuilt, absent from consent.subjects"
    if rebuilt.source in ("log", "ledger") and result.differing:
        result.skipped = await _find_moved_on(conn, rebuilt, list(result.differing))
        for subject in result.skipped:
            del result.differing[subject]
    return result


async def _find_moved_on(conn: Any, rebuilt: Rebuilt, subjects: list[str]) -> set[str]:
    rows = await conn.fetch(
        """SELECT DISTINCT e.subject FROM consent.events e
           LEFT JOIN unnest($2::int[], $3::bigint[]) AS p(partition, end_offset)
             ON p.partition = e.partition
           WHERE e.topic = $1 AND e.subject = ANY($4::text[])
             AND e."offset" >= coalesce(p.end_offset, 0)""",
        rebuilt.topic,
        list(rebuilt.positions),
        list(rebuilt.positions.values()),
        subjects,
    )
    return {row["subject"] for row in rows}
