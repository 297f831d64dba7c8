"""Folds the histories of people, each known by one or more identifiers.

A person may be known by a phone number, a WhatsApp user id, or both, and other
channels will add identifiers of their own. Their state is the fold of the
consent events of all their identifiers, ordered by `occurred_at`, whichever
identifier, key or partition each was written under. Identity events say who
is who:

- `IdentityLinked` (subject, linked): the two identifiers name one person. Their
  histories join whole, the past included, so a STOP sent from a WhatsApp user
  id before its number was known stops sends to that number once it is.
- `IdentifierChanged` (subject, previous): from `occurred_at` on, the person who
  was known by `previous` is known by `subject` instead. Their history follows
  them; `previous` starts afresh, for whoever it is given to next (a recycled
  number owes its new owner none of the old owner's consent). The history the
  new identifier had before it changed hands stays with its old owner.

Everything here is a pure function of the set of events: the same events in any
arrival order give the same states.
"""

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from operator import itemgetter

from shared.consent.event_identity import event_id_of
from shared.consent.fold import fold_subject, fold_subjects
from shared.consent.state import LoggedEvent, OrderKey, SubjectState
from shared.contract.events import IDENTITY_TYPES, EventType
from shared.kafka.log_order import first_per_id

_KEY = itemgetter(0)


def is_identity(logged: LoggedEvent) -> bool:
    return logged.event.type in IDENTITY_TYPES


def fold_people(events: Iterable[LoggedEvent]) -> dict[str, tuple[SubjectState, OrderKey | None]]:
    """Returns, for every identifier the events name, the state of the person it names
    now and the order key of the latest consent event folded into it (None: the
    person has none, as for a number that changed hands).

    With no identity events this is `fold_subjects`: each identifier its own person.
    """
    events = events if isinstance(events, list) else list(events)
    if not any(logged.event.type in IDENTITY_TYPES for logged in events):
        # The rebuild's whole log, most of the time: no second pass over it.
        return dict(fold_subjects(events))
    first = list(first_per_id(events, event_id_of).values())
    # (instant, identifier) of every change: who leaves an identifier, and when.
    leaving = {
        (e.order_key()[0], e.event.previous)
        for e in first
        if e.event.type is EventType.IDENTIFIER_CHANGED
    }
    people = _People()
    for _, logged in sorted(((_walk_key(e, leaving), e) for e in first), key=_KEY):
        people.apply(logged)
    return people.states()


def _walk_key(logged: LoggedEvent, leaving: set[tuple[datetime, str | None]]) -> tuple[object, ...]:
    """Orders as the fold does, but within one instant: the events of an identifier
    that changes then, the change, then the rest. WhatsApp stamps to the second, so
    a STOP and a number change can share one: a STOP from the old number binds the
    person who sent it, and one from the new number binds them too, in whatever
    order the three arrived."""
    occurred, *position = logged.order_key()
    event = logged.event
    if event.type is EventType.IDENTIFIER_CHANGED:
        rank = 1
    else:
        rank = 0 if (occurred, event.subject) in leaving else 2
    return (occurred, rank, *position)


class _People:
    """Assigns each consent event to the person its identifier named when it occurred.

    Persons are nodes of a union-find: a link merges two, whole; a change gives
    the previous identifier a fresh node. Applied in order-key order only."""

    def __init__(self) -> None:
        self._parent: list[int] = []
        self._owner: dict[str, int] = {}
        self._events: dict[int, list[LoggedEvent]] = defaultdict(list)
        # The person each changed identifier left: a link that would join it back
        # (a webhook about an old message, delivered late) is stale, not news.
        self._left: dict[str, int] = {}

    def apply(self, logged: LoggedEvent) -> None:
        event = logged.event
        if event.type is EventType.IDENTITY_LINKED:
            assert event.linked is not None  # the model requires it
            if not self._stale(event.subject, event.linked):
                self._union(self._node(event.subject), self._node(event.linked))
        elif event.type is EventType.IDENTIFIER_CHANGED:
            assert event.previous is not None  # the model requires it
            person = self._find(self._node(event.previous))
            self._node(event.subject)  # its history so far stays with its old owner
            self._owner[event.subject] = person
            self._owner[event.previous] = self._fresh()
            self._left[event.previous] = person
            self._left.pop(event.subject, None)
        else:
            self._events[self._node(event.subject)].append(logged)

    def states(self) -> dict[str, tuple[SubjectState, OrderKey | None]]:
        histories: dict[int, list[LoggedEvent]] = defaultdict(list)
        for node, events in self._events.items():
            histories[self._find(node)].extend(events)
        members: dict[int, list[str]] = defaultdict(list)
        for identifier, node in self._owner.items():
            members[self._find(node)].append(identifier)
        folded: dict[str, tuple[SubjectState, OrderKey | None]] = {}
        for root, identifiers in members.items():
            history = histories.get(root, [])
            through = max((e.order_key() for e in history), default=None)
            linked = tuple(sorted(identifiers)) if len(identifiers) > 1 else ()
            for identifier in identifiers:
                state = fold_subject(identifier, history)
                if linked:
                    state = state.model_copy(update={"identifiers": linked})
                folded[identifier] = (state, through)
        return folded

    def _stale(self, a: str, b: str) -> bool:
        """Tells whether linking a and b would join an identifier back to the person
        who left it, or join two identifiers one person left."""
        left_a, left_b = self._left.get(a), self._left.get(b)
        if left_a is not None:
            person = self._find(left_a)
            if person == self._find(self._node(b)):
                return True
            if left_b is not None and person == self._find(left_b):
                return True
        return left_b is not None and self._find(left_b) == self._find(self._node(a))

    def _node(self, identifier: str) -> int:
        node = self._owner.get(identifier)
        if node is None:
            node = self._owner[identifier] = self._fresh()
        return node

    def _fresh(self) -> int:
        self._parent.append(len(self._parent))
        return len(self._parent) - 1

    def _find(self, node: int) -> int:
        parent = self._parent
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def _union(self, a: int, b: int) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)


def linked_sets(events: Iterable[LoggedEvent]) -> dict[str, frozenset[str]]:
    """Returns, for every identifier an identity event among `events` names, the set of
    identifiers connected to it, however indirectly (itself included): all whose
    histories the fold of its person needs."""
    edges: dict[str, set[str]] = defaultdict(set)
    for logged in events:
        other = logged.event.other_identifier
        if other is not None:
            edges[logged.event.subject].add(other)
            edges[other].add(logged.event.subject)
    sets: dict[str, frozenset[str]] = {}
    for start in edges:
        if start in sets:
            continue
        found, frontier = {start}, [start]
        while frontier:
            for other in edges[frontier.pop()]:
                if other not in found:
                    found.add(other)
                    frontier.append(other)
        frozen = frozenset(found)
        sets.update(dict.fromkeys(frozen, frozen))
    return sets


def connected(identifiers: Iterable[str], events: Iterable[LoggedEvent]) -> frozenset[str]:
    """Returns `identifiers` with every identifier the identity events among `events`
    connect them to."""
    sets = linked_sets(events)
    return frozenset().union(*(sets.get(i, {i}) for i in identifiers))
