"""Holds what a rebuild produces (the folded states, as of which log positions), and
what its readers, writer and verifier share."""

import gc
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from aiokafka import ConsumerRecord
from tqdm import tqdm

from shared.consent.people import fold_people
from shared.consent.state import LoggedEvent, OrderKey, SubjectState
from shared.consent.suppression import Suppression, mark_erased, without_erased
from shared.rejection import Rejected

Source = Literal["log", "table", "ledger"]
CHUNK = 5000  # records per fetch, rows per cursor prefetch and per write


class RebuildRefusedError(RuntimeError):
    """The rebuild cannot be written or compared safely; nothing was written."""


@dataclass
class Rebuilt:
    """Holds subject states folded from `source`, as of `positions` (next offset per partition)."""

    source: Source
    topic: str
    positions: dict[int, int]
    states: dict[str, SubjectState] = field(default_factory=dict)
    through: dict[str, OrderKey] = field(default_factory=dict)  # each state's latest event
    events: list[LoggedEvent] = field(default_factory=list)  # from the log: to insert
    rejected: Counter[str] = field(default_factory=Counter)
    unseen_rejects: list[tuple[ConsumerRecord, Rejected]] = field(default_factory=list)
    scope: frozenset[str] | None = None  # only these subjects were rebuilt
    records: int = 0
    erased: int = 0  # records of erased people, appended before their erasure: dropped

    def drop_erased(
        self, events: list[LoggedEvent], suppressed: Mapping[str, Suppression]
    ) -> list[LoggedEvent]:
        """Drops an erased person's past, as the projector does (shared/consent/suppression.py)."""
        kept = without_erased(events, suppressed)
        self.erased += len(events) - len(kept)
        return kept

    def fold(
        self, events: Iterable[LoggedEvent], suppressed: Mapping[str, Suppression] | None = None
    ) -> None:
        for subject, (state, through) in fold_people(events).items():
            if self.scope is not None and subject not in self.scope:
                continue
            self.states[subject] = mark_erased(state, suppressed) if suppressed else state
            if through is not None:
                self.through[subject] = through

    def summary(self) -> str:
        rejected = ", ".join(f"{r}: {n}" for r, n in sorted(self.rejected.items())) or "none"
        return (
            f"rebuilt from {self.source} ({self.topic}): {self.records} records, "
            f"{sum(s.version for s in self.states.values())} events folded into "
            f"{len(self.states)} subjects, rejected {sum(self.rejected.values())} ({rejected}), "
            f"{self.erased} of erased people dropped, "
            f"positions {dict(sorted(self.positions.items()))}"
        )


def progress_bar(total: int, wanted: bool, label: str) -> "tqdm[Any]":
    return tqdm(
        total=total,
        desc=f"rebuild from {label}",
        unit="ev",
        unit_scale=True,
        file=sys.stderr,
        disable=not (wanted or sys.stderr.isatty()),
    )


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Reading and folding millions of events creates millions of objects and no
    cycles; the cyclic collector would rescan the growing heap over and over (about
    half of the fold's time, measured). Reference counting still frees garbage.

    What survives the block is frozen before the collector resumes: else its first
    collection traverses every object the block allocated (1.7 µs an event,
    measured). Frozen objects are still freed by reference counting when the
    rebuild is dropped; only a reference cycle among them would outlive it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
