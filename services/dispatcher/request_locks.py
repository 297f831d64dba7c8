"""Serialises the writers of one request_id, where no unique key can.

dispatcher.decisions and dispatcher.sends are partitioned by day
(deploy/migrations/dispatcher/005_day_partitions.sql), and a partitioned table's
unique keys must hold the day: two instances deciding one request_id at different
instants would both insert. So each writer takes a transaction-scoped advisory lock
on every request_id it writes before it looks for them: the second waits for the
first's commit, and its next statement, under a new snapshot, sees that row.

The lock must be taken in a statement of its own, before the lookup: under READ
COMMITTED a statement's snapshot is taken when it starts, so a lookup in the same
statement as the lock could miss a row committed while it waited."""

from collections.abc import Sequence
from typing import Any, Final

# Each table's locks in a key space of their own (the first key), so that a decision
# and a send of one request_id never wait for each other. ASCII "deci" and "send".
DECISIONS: Final = 0x64656369
SENDS: Final = 0x73656E64
# A request_id locks one of 64 buckets of its hash, so that a transaction holds 64
# locks at most: PostgreSQL's lock table is shared and bounded (max_locks_per_transaction
# × max_connections, 6,400 by default), and a lock per request_id of batches of 2,000
# would fill it with a few instances. The price: batches sharing a bucket record one
# after the other, as large batches would anyway.
BUCKETS: Final = 64

# In key order, whoever asks: two batches sharing buckets then never deadlock.
_LOCK = """
SELECT pg_advisory_xact_lock($1::int, bucket)
FROM (SELECT DISTINCT hashtext(r) & $3::int AS bucket FROM unnest($2::text[]) AS r
      ORDER BY bucket) AS buckets
"""


async def lock_request_ids(conn: Any, space: int, request_ids: Sequence[str]) -> None:
    """Locks `request_ids` in `space` until `conn`'s transaction ends."""
    await conn.execute(_LOCK, space, list(request_ids), BUCKETS - 1)
