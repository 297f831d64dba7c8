"""Reads consent.suppression, the pseudonyms of erased identifiers (migration
consent/008), for shared/consent/suppression.py's rules."""

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from shared.consent.state import LoggedEvent
from shared.consent.suppression import Suppression, identifiers_of
from shared.pseudonyms import Pseudonymizer

_ANY = "SELECT EXISTS (SELECT FROM consent.suppression)"
_BY_PSEUDONYM = """
SELECT pseudonym, erasure_event_id, requested_at, erased_at FROM consent.suppression
WHERE pseudonym = ANY($1::text[])
"""
_ALL = "SELECT pseudonym, erasure_event_id, requested_at, erased_at FROM consent.suppression"


def _suppression(row: Any) -> Suppression:
    return Suppression(row["erasure_event_id"], row["requested_at"], row["erased_at"])


async def suppressed_among(
    conn: Any, index: Pseudonymizer, identifiers: Collection[str]
) -> dict[str, Suppression]:
    """The suppressions of `identifiers`, by identifier. Until anybody is erased this
    costs one cheap query and no HMAC."""
    if not identifiers or not await conn.fetchval(_ANY):
        return {}
    by_pseudonym = {index.of(identifier): identifier for identifier in identifiers}
    rows = await conn.fetch(_BY_PSEUDONYM, list(by_pseudonym))
    return {by_pseudonym[row["pseudonym"]]: _suppression(row) for row in rows}


async def all_suppressions(conn: Any) -> dict[str, Suppression]:
    """Every suppression, by pseudonym: a rebuild reads the list once."""
    return {row["pseudonym"]: _suppression(row) for row in await conn.fetch(_ALL)}


def by_identifier(
    by_pseudonym: dict[str, Suppression], index: Pseudonymizer, identifiers: Collection[str]
) -> dict[str, Suppression]:
    if not by_pseudonym:
        return {}
    found = {}
    for identifier in identifiers:
        if (s := by_pseudonym.get(index.of(identifier))) is not None:
            found[identifier] = s
    return found


@dataclass(frozen=True)
class SuppressionList:
    """The whole suppression list, as a rebuild reads it once, with the key to find an
    identifier in it."""

    by_pseudonym: dict[str, Suppression]
    index: Pseudonymizer

    def among(self, events: Iterable[LoggedEvent]) -> dict[str, Suppression]:
        """The suppressions of the identifiers `events` name, by identifier."""
        if not self.by_pseudonym:
            return {}
        return by_identifier(
            self.by_pseudonym, self.index, {i for e in events for i in identifiers_of(e)}
        )


async def suppression_list(conn: Any, index: Pseudonymizer) -> SuppressionList:
    return SuppressionList(await all_suppressions(conn), index)
