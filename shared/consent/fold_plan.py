"""Decides which subjects a batch of newly recorded events is folded onto their
stored states, and which are folded again from their whole history, apart from the
SQL that locks, loads and saves them."""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from shared.consent.state import LoggedEvent, OrderKey


@dataclass(frozen=True)
class FoldOn:
    """Holds new events to fold onto a stored state, and the order key of the latest of them."""

    events: Sequence[LoggedEvent]
    through: OrderKey


def by_subject(events: Iterable[LoggedEvent]) -> dict[str, list[LoggedEvent]]:
    """Groups the events by subject, each group in the order given."""
    grouped: dict[str, list[LoggedEvent]] = defaultdict(list)
    for logged in events:
        grouped[logged.event.subject].append(logged)
    return dict(grouped)


def plan_folds(
    stored_throughs: Mapping[str, OrderKey | None],
    new_events: Mapping[str, Sequence[LoggedEvent]],
) -> tuple[dict[str, FoldOn], list[str]]:
    """Decides per subject of `new_events` (events of ids its history does not hold
    yet): fold on when every new event sorts after the stored state's `through`, which
    `fold_onto` guarantees equal to a whole refold; else refold (a late event sorts
    inside the history, or no state is stored). Refolds follow `stored_throughs`'
    order, then the subjects with no stored state, sorted."""
    fold_on: dict[str, FoldOn] = {}
    refold: list[str] = []
    for subject, through in stored_throughs.items():
        later = new_events.get(subject)
        if not later:
            continue
        keys = [e.order_key() for e in later]
        if through is None or min(keys) <= through:
            refold.append(subject)
        else:
            fold_on[subject] = FoldOn(later, max(keys))
    refold.extend(sorted(s for s in new_events if s not in stored_throughs and new_events[s]))
    return fold_on, refold
