"""`consent.data_keys` (migration consent/007) over asyncpg: the wrapped data keys,
one per identifier's pseudonym. Deleting a row is the erasure: whatever was sealed
under that key, in the ledgers and in every copy of them, can no longer be read.

Run it on a pool or a connection in READ COMMITTED (PostgreSQL's default): a lost
race of `get_or_create` is settled by its next statement, which only a fresh
snapshot can see. The projector's role may read and insert; deleting is the
erasure job's and rewrapping the rotation's, both run as the owner for now
(deploy/migrations/consent/007_data_keys.sql)."""

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from shared.erasure.data_keys import Erased, WrappedKey

# The CTE's own insertions are invisible to the outer SELECT (one snapshot for the
# whole statement), hence the UNION of what it inserted and what was there.
# Inserting in pseudonym order makes two writers of overlapping batches wait for
# each other in the same order, never in a cycle (a deadlock).
_GET_OR_CREATE = """
WITH inserted AS (
    INSERT INTO consent.data_keys (pseudonym, master_key_id, wrapped_key)
    SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) ORDER BY 1
    ON CONFLICT (pseudonym) DO NOTHING
    RETURNING pseudonym, master_key_id, wrapped_key
)
SELECT pseudonym, master_key_id, wrapped_key FROM inserted
UNION ALL
SELECT pseudonym, master_key_id, wrapped_key FROM consent.data_keys
WHERE pseudonym = ANY($1::text[])
"""
_FETCH = """SELECT pseudonym, master_key_id, wrapped_key FROM consent.data_keys
WHERE pseudonym = ANY($1::text[])"""
_DELETE = "DELETE FROM consent.data_keys WHERE pseudonym = ANY($1::text[])"
_COUNT_BY_MASTER = "SELECT master_key_id, count(*) FROM consent.data_keys GROUP BY 1"
_PAGE_NOT_UNDER = """SELECT pseudonym, master_key_id, wrapped_key FROM consent.data_keys
WHERE master_key_id <> $1 AND pseudonym > $2 ORDER BY pseudonym LIMIT $3"""
# Only a row still as it was read is replaced: one erased meanwhile stays erased,
# and one erased and created anew keeps its new key.
_REPLACE = """UPDATE consent.data_keys AS k SET master_key_id = u.new_id, wrapped_key = u.new_key
FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::bytea[])
    AS u(pseudonym, old_id, old_key, new_id, new_key)
WHERE k.pseudonym = u.pseudonym AND k.master_key_id = u.old_id AND k.wrapped_key = u.old_key"""

# Two attempts settle any race but an erasure between them; a third, that too.
_ATTEMPTS = 3


class KeyStoreRaceError(RuntimeError):
    """Keys were still missing after every attempt to create them."""


class PostgresKeyStore:
    def __init__(self, db: Any) -> None:
        self._db = db

    async def get_or_create(self, candidates: Mapping[str, WrappedKey]) -> dict[str, WrappedKey]:
        """The stored key of each pseudonym, storing its candidate where none is.
        One statement, and one more for the pseudonyms a concurrent writer stored
        while it ran: its snapshot could not see them."""
        found: dict[str, WrappedKey] = {}
        missing = sorted(candidates)
        for _ in range(_ATTEMPTS):
            rows = await self._db.fetch(
                _GET_OR_CREATE,
                missing,
                [candidates[p].master_key_id for p in missing],
                [candidates[p].wrapped for p in missing],
            )
            found |= _wrapped(rows)
            missing = [p for p in missing if p not in found]
            if not missing:
                return found
        raise KeyStoreRaceError(f"{len(missing)} data keys still missing after {_ATTEMPTS} tries")

    async def fetch(self, pseudonyms: Collection[str]) -> dict[str, WrappedKey | Erased]:
        """Each pseudonym's key, or Erased where it has none."""
        stored = _wrapped(await self._db.fetch(_FETCH, list(pseudonyms)))
        return {p: stored.get(p) or Erased(p) for p in pseudonyms}

    async def delete(self, pseudonyms: Collection[str]) -> int:
        """Deletes the keys of these pseudonyms; returns how many there were."""
        status: str = await self._db.execute(_DELETE, list(pseudonyms))
        return int(status.rsplit(" ", 1)[1])

    async def count_by_master(self) -> dict[str, int]:
        return {r[0]: r[1] for r in await self._db.fetch(_COUNT_BY_MASTER)}

    async def page_not_under(
        self, master_key_id: str, after: str, limit: int
    ) -> list[tuple[str, WrappedKey]]:
        """Up to `limit` keys not wrapped under `master_key_id`, by pseudonym after `after`."""
        rows = await self._db.fetch(_PAGE_NOT_UNDER, master_key_id, after, limit)
        return list(_wrapped(rows).items())

    async def replace(self, changes: Sequence[tuple[str, WrappedKey, WrappedKey]]) -> int:
        """Replaces each (pseudonym, old, new) whose row still holds `old`; returns how many."""
        status: str = await self._db.execute(
            _REPLACE,
            [p for p, _, _ in changes],
            [old.master_key_id for _, old, _ in changes],
            [old.wrapped for _, old, _ in changes],
            [new.master_key_id for _, _, new in changes],
            [new.wrapped for _, _, new in changes],
        )
        return int(status.rsplit(" ", 1)[1])


def _wrapped(rows: Sequence[Any]) -> dict[str, WrappedKey]:
    return {r["pseudonym"]: WrappedKey(r["master_key_id"], bytes(r["wrapped_key"])) for r in rows}
