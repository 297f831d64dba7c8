"""Reconstructs what a decision saw: the consent events of the person its recipient
names, below the decision's fence, folded with the services' own `fold_people`."""

from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime

from shared.consent.event_identity import event_id_of
from shared.consent.people import fold_people, is_identity, linked_sets
from shared.consent.state import LoggedEvent, SubjectState
from shared.contract.decisions import DispatchDecision
from shared.kafka.log_order import first_per_id


class SubjectLog:
    """Holds the events of one subject and of every identifier ever linked to it, in log
    order. A view is a bit mask over them; each distinct view is folded once (a
    subject's decisions mostly share views)."""

    __slots__ = ("_states", "events", "subject")

    def __init__(self, subject: str, events: Iterable[LoggedEvent]) -> None:
        self.subject = subject
        self.events = sorted(events, key=LoggedEvent.log_key)
        self._states: dict[int, SubjectState | None] = {0: None}

    def fenced(self, decision: DispatchDecision) -> int:
        """Returns the events the decision waited for: below its fence (the end offsets it
        read); a decision without a fence saw what the log held at decided_at."""
        fence = decision.fence
        if fence is None:
            return self.appended_by(decision.decided_at, inclusive=True)
        mask = 0
        for i, logged in enumerate(self.events):
            if logged.offset < fence.get(str(logged.partition), 0):
                mask |= 1 << i
        return mask

    def appended_by(self, moment: datetime, *, inclusive: bool = False) -> int:
        mask = 0
        for i, logged in enumerate(self.events):
            if logged.log_time < moment or (inclusive and logged.log_time == moment):
                mask |= 1 << i
        return mask

    def wider_views(self, fenced: int, written_at: datetime) -> Iterator[int]:
        """Yields the views the dispatcher may have had beyond its fence: the projection may
        have applied later events before the states were read, and that read came
        before the decision was written (`written_at`: its record's timestamp)."""
        mask = fenced
        for i, logged in enumerate(self.events):
            if not mask >> i & 1 and logged.log_time <= written_at:
                mask |= 1 << i
                yield mask

    def state(self, mask: int) -> SubjectState | None:
        if mask not in self._states:
            folded = fold_people(self.visible(mask)).get(self.subject)
            self._states[mask] = None if folded is None else folded[0]
        return self._states[mask]

    def visible(self, mask: int) -> list[LoggedEvent]:
        return [logged for i, logged in enumerate(self.events) if mask >> i & 1]

    def find(self, event_id: str | None) -> LoggedEvent | None:
        return next((e for e in self.events if e.event.event_id == event_id), None)


def subject_logs(events: Iterable[LoggedEvent]) -> dict[str, SubjectLog]:
    """An event_id seen before is ignored (contract section 2), across subjects too,
    as the projection's table keeps it: the first in log order stands."""
    first = list(first_per_id(events, event_id_of).values())
    histories: dict[str, list[LoggedEvent]] = defaultdict(list)
    for logged in first:
        histories[logged.event.subject].append(logged)
        if (other := logged.event.other_identifier) is not None:
            histories.setdefault(other, [])
    sets = linked_sets(logged for logged in first if is_identity(logged))
    logs = {}
    for subject, history in histories.items():
        if subject in sets:
            history = [e for linked in sorted(sets[subject]) for e in histories[linked]]
        logs[subject] = SubjectLog(subject, history)
    return logs
