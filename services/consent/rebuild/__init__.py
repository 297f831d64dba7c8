"""Rebuilds the consent projection from the log, or verifies it (ARCHITECTURE.md section 2).

    python -m services.consent.rebuild [--from log|table|ledger] [--verify] [--progress]
                                       [--timeout SECONDS] [--topic TOPIC]

`--from log` (the default) reads `consent.events.v1` from the beginning up to
the end offsets taken at start (no consumer group, read_committed), validates
each record as the projector does (a rejected record is counted and skipped:
the projector dead-letters it), clamps `occurred_at` to the broker's timestamp
and folds every subject with `fold_subject`, the projector's own fold.
`--from table` folds `consent.events` (the projector's copy of the log) instead,
streamed with a server-side cursor from one snapshot. `--from ledger` folds
`consent.ledger.v1`, the consent service's sealed copy of the log and the durable
truth once the log's retention is bounded (docs/erasure.md): the chain of every
partition is checked first, erased people's entries are counted and skipped,
and the positions written to `consent.tracking` are those the ledger writer
committed; a projection past them is refused (let the writer catch up first).

The log is read with the current rules. When validation tightens, a record
the projector accepted under the looser rules is skipped like any reject, so
its subject's state can differ from the projection built then. Run `--verify`
first after such a change; it names the subjects that differ.
`--from table` is not affected: the table keeps each event as it was
accepted, in canonical form.

Without `--verify`, ONE transaction inserts the events `consent.events` lacks,
replaces `consent.subjects` with the rebuilt states and (from the log) sets
`consent.tracking` to the end offsets read: the projector continues from
there. Rejected records past the tracked positions (the projector never
reached them) go to the DLQ first, as the projector would have sent them: at
least once, so a refused write, or a database rebuilt from nothing, may
dead-letter a record again.

With `--verify` nothing is written: the rebuilt states are compared, as
SubjectState models, with `consent.subjects`. From the log it first waits
(`--timeout`) until `consent.tracking` has reached the end offsets read, so
both sides have seen the same positions; a subject with events past them (the
live projector moved on) is skipped, not compared. From the table, the events
and the states are read in one snapshot.

Exit status: 0 written / equal; 1 states differ (the subjects are named,
masked); 2 refused or failed (tracking moved, projection behind, no broker).

Memory: every event read is held until the write, about 1.4 KB per event
(1.4 GB per million; `make bench` measures it). The cyclic garbage collector is
paused while the log is read and folded (reference counting still frees
garbage), and what the rebuild holds is frozen before it resumes.

Stop the consent service during a rebuild that writes: a live projector races
it. The command protects itself rather than trusting that: it reads
`consent.tracking` before reading the source and, in its write transaction,
first locks `consent.events`, `consent.subjects` and `consent.tracking` IN
EXCLUSIVE MODE (writers wait, readers such as the API and the dispatcher's
fence do not; taken in the projector's own order, so a projector transaction
in flight completes first instead of deadlocking), then refuses to write if
tracking moved since: the projector applied something the rebuild did not
account for. A projector left waiting on the locks resumes after the commit;
its next batch refolds from `consent.events`, which the rebuild completed, so
the two stay consistent.
"""

from services.consent.rebuild.read_ledger import rebuild_states_from_ledger
from services.consent.rebuild.read_log import rebuild_states
from services.consent.rebuild.read_table import rebuild_states_from_table
from services.consent.rebuild.rebuilt import RebuildRefusedError, Rebuilt, Source
from services.consent.rebuild.verify import (
    Verification,
    compare_with_table,
    verify_rebuilt,
    wait_for_tracking,
)
from services.consent.rebuild.write import Written, write_rebuilt
from services.consent.store import tracking_positions

__all__ = [
    "RebuildRefusedError",
    "Rebuilt",
    "Source",
    "Verification",
    "Written",
    "compare_with_table",
    "rebuild_states",
    "rebuild_states_from_ledger",
    "rebuild_states_from_table",
    "tracking_positions",
    "verify_rebuilt",
    "wait_for_tracking",
    "write_rebuilt",
]
