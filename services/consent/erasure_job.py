"""Carries out the erasures whose grace has passed (docs/erasure.md, section 5, step 3):
for each person, in one transaction, `consent.erase_person` (migration consent/008)
keeps a suppression row per identifier and deletes their events, state, links and
data keys. Runs in the consent service every minute; each round is idempotent, so a
failed or interrupted round is simply run again."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
import structlog

from services.consent import metrics
from services.consent.store import CONNECTED
from shared.backoff import RetryPolicy
from shared.consent.state import SubjectState
from shared.erasure.key_cache import CachedDataKeys
from shared.pseudonyms import Pseudonymizer
from shared.rounds import in_rounds

log = structlog.get_logger(__name__)

INTERVAL_SECONDS: Final = 60.0
# People erased per round: a round's transactions stay short and the next round
# takes the rest.
ROUND_SIZE: Final = 100

_DUE = """
SELECT subject, state::text AS state FROM consent.subjects
WHERE (state ->> 'erasure_event_id') IS NOT NULL
  AND (state ->> 'erasure_requested_at')::timestamptz <= $1
ORDER BY subject
LIMIT $2
"""
_ERASE = "SELECT consent.erase_person($1::text[], $2::text[], $3, $4)::text"


@dataclass(frozen=True, slots=True)
class Person:
    """One erasure to carry out: every identifier of the person, and the request."""

    identifiers: tuple[str, ...]
    erasure_event_id: str
    requested_at: datetime


@dataclass(frozen=True, slots=True)
class Erased:
    """What one call of consent.erase_person deleted. `first_time` is False when the
    person was erased before and this call erased what reached them since."""

    erasure_event_id: str
    first_time: bool
    identifiers: int
    events_deleted: int
    keys_deleted: int


def people_of(states: list[SubjectState]) -> list[Person]:
    """Groups the due states into people: the identifiers of a person share one
    state's `identifiers` and one erasure request (the first, shared/consent/fold.py)."""
    people: dict[tuple[str, ...], Person] = {}
    for state in states:
        if state.erasure_event_id is None or state.erasure_requested_at is None:
            continue
        identifiers = tuple(sorted({state.subject, *state.identifiers}))
        people.setdefault(
            identifiers,
            Person(identifiers, state.erasure_event_id, state.erasure_requested_at),
        )
    return list(people.values())


@dataclass
class ErasureJob:
    pool: Any
    index: Pseudonymizer
    grace: timedelta
    # This process's cache of data keys (the ledger writers'), told to forget the
    # keys an erasure deleted; other processes forget them within the cache's time.
    keys: CachedDataKeys | None = None
    interval: float = INTERVAL_SECONDS
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(first=5.0, cap=300.0))
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def run(self) -> None:
        await in_rounds(
            self.erase_due,
            interval=self.interval,
            retry=self.retry,
            on_health=lambda healthy: metrics.ERASURES_FAILING.set(0 if healthy else 1),
            sleep=self.sleep,
            name="carrying out erasures",
        )

    async def erase_due(self) -> list[Erased]:
        """Runs one round: erases up to ROUND_SIZE people whose grace has passed."""
        rows = await self.pool.fetch(_DUE, self.clock() - self.grace, ROUND_SIZE)
        people = people_of([SubjectState.model_validate_json(row["state"]) for row in rows])
        metrics.ERASURES_DUE.set(len(people))
        done = []
        for person in people:
            done.append(await self.erase(person))
        return done

    async def erase(self, person: Person) -> Erased:
        async with self.pool.acquire() as conn, conn.transaction():
            # A link recorded after the state was folded joins the erasure too.
            linked = {row["identifier"] for row in await conn.fetch(CONNECTED, person.identifiers)}
            identifiers = sorted(set(person.identifiers) | linked)
            pseudonyms = [self.index.of(identifier) for identifier in identifiers]
            done = orjson.loads(
                await conn.fetchval(
                    _ERASE, identifiers, pseudonyms, person.erasure_event_id, person.requested_at
                )
            )
        if self.keys is not None:
            self.keys.forget(pseudonyms)
        erased = Erased(
            person.erasure_event_id,
            done["first_time"],
            done["identifiers"],
            done["events_deleted"],
            done["keys_deleted"],
        )
        if erased.first_time:
            metrics.ERASURES.inc()
        log.info(
            "erasure carried out" if erased.first_time else "erased person's new records erased",
            erasure_event_id=erased.erasure_event_id,
            identifiers=erased.identifiers,
            events_deleted=erased.events_deleted,
            keys_deleted=erased.keys_deleted,
        )
        return erased
