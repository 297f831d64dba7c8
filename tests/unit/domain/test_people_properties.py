"""Properties of fold_people that must hold for any mix of consent, link and change events
(hypothesis).

Every event has an occurred_at of its own, so that the fold's order is the events' and
no tie is left to arrival."""

from collections import defaultdict
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.consent.fold import fold_subject
from shared.consent.people import connected, fold_people, is_identity, linked_sets
from shared.consent.state import LoggedEvent, OrderKey, SubjectState
from shared.contract.events import CONSENT_TYPES, ConsentEvent, EventType
from shared.contract.purposes import Purpose
from tests.unit.domain.builders import (
    T0,
    arrived,
    granted,
    logged,
    opted_in,
    opted_out,
    revoked,
)
from tests.unit.domain.test_people import changed, linked

PROPERTY = settings(max_examples=150, deadline=None)

PHONES = ("+79161234567", "+447911123456", "+4915123456789")
USER_IDS = ("US.13491208655302741918", "US.ENT.abc", "GB.8812")
IDENTIFIERS = PHONES + USER_IDS

People = dict[str, tuple[SubjectState, OrderKey | None]]

purposes = st.lists(st.sampled_from(Purpose), min_size=1, max_size=2, unique=True)
pairs = st.lists(st.sampled_from(IDENTIFIERS), min_size=2, max_size=2, unique=True)


@st.composite
def consent_event(draw: st.DrawFn, event_id: str, minute: int) -> ConsentEvent:
    subject = draw(st.sampled_from(IDENTIFIERS))
    occurred_at = T0 + timedelta(minutes=minute)
    kind = draw(st.sampled_from(sorted(CONSENT_TYPES)))
    if kind is EventType.CONSENT_GRANTED:
        return granted(*draw(purposes), event_id=event_id, occurred_at=occurred_at, subject=subject)
    if kind is EventType.CONSENT_REVOKED:
        return revoked(
            *draw(st.just([]) | purposes),
            event_id=event_id,
            occurred_at=occurred_at,
            subject=subject,
        )
    if kind is EventType.OPTED_OUT:
        return opted_out(event_id=event_id, occurred_at=occurred_at, subject=subject)
    return opted_in(event_id=event_id, occurred_at=occurred_at, subject=subject)


@st.composite
def histories(draw: st.DrawFn, *, changes: bool = True, max_events: int = 14) -> list[ConsentEvent]:
    """Events of several people, each at a minute of its own, in the order they happened."""
    count = draw(st.integers(0, max_events))
    minutes = sorted(
        draw(st.lists(st.integers(0, 200), min_size=count, max_size=count, unique=True))
    )
    kinds = ["consent", "link", "change"] if changes else ["consent", "link"]
    events = []
    for i, minute in enumerate(minutes):
        kind = draw(st.sampled_from(kinds))
        if kind == "consent":
            events.append(draw(consent_event(f"e{i}", minute)))
        elif kind == "link":
            subject, other = draw(pairs)
            events.append(linked(subject, other, minutes=minute, event_id=f"e{i}"))
        else:
            previous, subject = draw(pairs)
            events.append(changed(previous, subject, minutes=minute, event_id=f"e{i}"))
    return events


def without_through_positions(folded: People) -> dict[str, tuple[SubjectState, object]]:
    """The states, and which event each was folded through (its own occurred_at)."""
    return {i: (s, None if through is None else through[0]) for i, (s, through) in folded.items()}


def by_reference(records: list[LoggedEvent]) -> People:
    """fold_people restated: persons are labels, relabelled on a link, handed on by a change."""
    first: dict[str, LoggedEvent] = {}
    for record in sorted(records, key=lambda r: (r.log_time, r.partition, r.offset)):
        first.setdefault(record.event.event_id, record)
    labels = iter(range(1_000_000))
    person: dict[str, int] = {}
    histories: list[tuple[int, LoggedEvent]] = []

    left: dict[str, int] = {}  # the person a changed identifier left

    def of(identifier: str) -> int:
        return person.setdefault(identifier, next(labels))

    # Within an instant: the events of an identifier changing then, the change, the rest.
    leaving = {
        (r.order_key()[0], r.event.previous)
        for r in first.values()
        if r.event.type is EventType.IDENTIFIER_CHANGED
    }

    def walk(r: LoggedEvent) -> tuple[object, ...]:
        occurred, *position = r.order_key()
        if r.event.type is EventType.IDENTIFIER_CHANGED:
            return (occurred, 1, *position)
        return (occurred, 0 if (occurred, r.event.subject) in leaving else 2, *position)

    for record in sorted(first.values(), key=walk):
        event = record.event
        if event.type is EventType.IDENTITY_LINKED:
            assert event.linked is not None
            a, b = event.subject, event.linked
            la, lb = left.get(a), left.get(b)
            stale = (la is not None and la in (of(b), lb)) or (lb is not None and lb == of(a))
            if stale:  # would join an identifier back to the person who left it
                continue
            keep, gone = of(a), of(b)
            person = {i: keep if p == gone else p for i, p in person.items()}
            left = {i: keep if p == gone else p for i, p in left.items()}
            histories = [(keep if p == gone else p, r) for p, r in histories]
        elif event.type is EventType.IDENTIFIER_CHANGED:
            assert event.previous is not None
            moving = of(event.previous)
            of(event.subject)
            person[event.subject] = moving
            person[event.previous] = next(labels)
            left[event.previous] = moving
            left.pop(event.subject, None)
        else:
            histories.append((of(event.subject), record))
    folded: People = {}
    for identifier, p in person.items():
        history = [r for q, r in histories if q == p]
        members = sorted(i for i, q in person.items() if q == p)
        state = fold_subject(identifier, history)
        if len(members) > 1:
            state = state.model_copy(update={"identifiers": tuple(members)})
        folded[identifier] = (state, max((r.order_key() for r in history), default=None))
    return folded


@PROPERTY
@given(data=st.data(), events=histories())
def test_any_arrival_order_of_the_same_events_gives_the_same_people(
    data: st.DataObject, events: list[ConsentEvent]
) -> None:
    shuffled = data.draw(st.permutations(events))

    assert without_through_positions(fold_people(arrived(*shuffled))) == (
        without_through_positions(fold_people(arrived(*events)))
    )


@PROPERTY
@given(data=st.data(), events=histories())
def test_the_same_records_in_any_iteration_order_give_the_same_people(
    data: st.DataObject, events: list[ConsentEvent]
) -> None:
    records = arrived(*events)

    assert fold_people(data.draw(st.permutations(records))) == fold_people(records)


@PROPERTY
@given(data=st.data(), events=histories())
def test_redelivering_any_event_changes_nothing(
    data: st.DataObject, events: list[ConsentEvent]
) -> None:
    records = arrived(*events)
    again = data.draw(st.lists(st.sampled_from(records), min_size=1, max_size=4)) if records else []
    latest = max((r.log_time for r in records), default=T0)
    redelivered = [
        logged(r.event, partition=1, offset=i, log_time=latest + timedelta(minutes=1 + i))
        for i, r in enumerate(again)
    ]

    assert fold_people(records + redelivered) == fold_people(records)


@PROPERTY
@given(events=histories())
def test_people_are_as_the_reference_restatement_says(events: list[ConsentEvent]) -> None:
    records = arrived(*events)

    assert fold_people(records) == by_reference(records)


@PROPERTY
@given(events=histories(changes=False))
def test_with_links_alone_each_identifier_folds_the_consent_of_its_whole_linked_set(
    events: list[ConsentEvent],
) -> None:
    records = arrived(*events)
    sets = linked_sets(records)

    folded = fold_people(records)

    named = {r.event.subject for r in records} | {
        i for r in records if (i := r.event.other_identifier) is not None
    }
    assert set(folded) == named
    for identifier, (state, through) in folded.items():
        members = sets.get(identifier, frozenset({identifier}))
        history = [r for r in records if not is_identity(r) and r.event.subject in members]
        assert state.model_copy(update={"identifiers": ()}) == fold_subject(identifier, history)
        assert state.identifiers == (tuple(sorted(members)) if len(members) > 1 else ())
        assert through == max((r.order_key() for r in history), default=None)


@PROPERTY
@given(data=st.data(), events=histories(changes=False))
def test_a_last_stop_through_any_identifier_of_a_linked_person_stops_all_of_them(
    data: st.DataObject, events: list[ConsentEvent]
) -> None:
    through = data.draw(st.sampled_from(IDENTIFIERS))
    last = max((e.occurred_at for e in events), default=T0)
    stop = opted_out(event_id="last-stop", occurred_at=last + timedelta(minutes=1), subject=through)
    before = fold_people(arrived(*events))

    after = fold_people(arrived(*events, stop))

    person = connected([through], arrived(*events))
    for identifier in person:
        assert after[identifier][0].opted_out
        assert after[identifier][0].opt_out_event_id == stop.event_id
        assert after[identifier][0].grants == {}
    others = {i: s for i, (s, _) in after.items() if i not in person}
    assert others == {i: s for i, (s, _) in before.items() if i not in person}


@PROPERTY
@given(events=histories())
def test_every_consent_event_is_folded_into_exactly_one_person_or_left_with_a_former_owner(
    events: list[ConsentEvent],
) -> None:
    """A person's version counts the consent events folded into them: no event is
    counted for two persons, and none without changes is lost."""
    records = arrived(*events)

    folded = fold_people(records)

    persons: dict[tuple[str, ...], int] = defaultdict(int)
    for identifier, (state, _) in folded.items():
        persons[state.identifiers or (identifier,)] = state.version
    consent = sum(1 for r in records if not is_identity(r))
    if not any(r.event.type is EventType.IDENTIFIER_CHANGED for r in records):
        assert sum(persons.values()) == consent
    else:
        assert sum(persons.values()) <= consent
