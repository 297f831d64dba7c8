"""Sets aside, in a history read from the ledgers, what is about erased people
(docs/audit.md, "From the ledgers").

A person is erased when a pseudonym of theirs is: an entry of theirs whose key is gone,
or a row of consent.suppression. What the ledgers still open about them was written
after their erasure (a record of their erased past is written empty), and the gate
drops every send to them, fail closed, on a state the audit cannot fold: their
ErasureRequested is erased. So their requests, events and decisions are counted, not
judged, but for one thing no erasure excuses: a decision that dispatched to them."""

from collections.abc import Callable, Collection, Iterable
from typing import TypeVar

from services.audit.history import History
from shared.consent.people import linked_sets
from shared.consent.state import LoggedEvent
from shared.consent.suppression import identifiers_of
from shared.identifiers import normalize_identifier
from shared.phone import InvalidPhoneNumberError
from shared.pseudonyms import Pseudonymizer

_T = TypeVar("_T")


class ErasedPeople:
    """Tells whether an identifier is an erased person's: its pseudonym is erased, or
    that of an identifier the identity events link it to (an erasure takes the whole
    person)."""

    def __init__(
        self,
        pseudonyms: Collection[str],
        index: Pseudonymizer,
        identity: Iterable[LoggedEvent] = (),
    ) -> None:
        self._pseudonyms = frozenset(pseudonyms)
        self._index = index
        self._linked = linked_sets(identity) if self._pseudonyms else {}
        self._known: dict[str, bool] = {}

    def name(self, identifier: str | None) -> bool:
        if not identifier or not self._pseudonyms:
            return False
        if identifier not in self._known:
            canonical = _canonical(identifier)
            person = self._linked.get(canonical, frozenset({canonical}))
            self._known[identifier] = any(self._index.of(i) in self._pseudonyms for i in person)
        return self._known[identifier]


def set_aside(history: History, people: ErasedPeople) -> None:
    """Moves what is about erased people out of what the audit judges, counting it; their
    decisions are kept apart, for a dispatch among them is still a violation."""
    history.events, erased_events = _split(
        history.events, lambda e: any(people.name(i) for i in identifiers_of(e))
    )
    history.decisions, history.about_erased = _split(
        history.decisions, lambda d: people.name(d.decision.recipient)
    )
    history.requests, erased_requests = _split(history.requests, lambda r: people.name(r.recipient))
    history.erased_events = len(erased_events)
    history.erased_requests = len(erased_requests)


def _canonical(identifier: str) -> str:
    # A request that did not parse names its recipient by its record's key, as given.
    try:
        return normalize_identifier(identifier)
    except InvalidPhoneNumberError:
        return identifier


def _split(items: list[_T], erased: Callable[[_T], bool]) -> tuple[list[_T], list[_T]]:
    kept: list[_T] = []
    aside: list[_T] = []
    for item in items:
        (aside if erased(item) else kept).append(item)
    return kept, aside
