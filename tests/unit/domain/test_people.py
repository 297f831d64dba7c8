"""fold_people: the consent of a person known by several identifiers, as links and changes say."""

from shared.consent.fold import fold_subjects
from shared.consent.people import connected, fold_people, is_identity, linked_sets
from shared.consent.state import OrderKey, Status, SubjectState
from shared.contract.events import ConsentEvent, EventType
from shared.contract.purposes import Purpose
from tests.unit.domain.builders import (
    OTHER_SUBJECT,
    SUBJECT,
    arrived,
    at,
    granted,
    opted_in,
    opted_out,
    revoked,
)

PHONE = SUBJECT
NEW_PHONE = OTHER_SUBJECT
BSUID = "US.13491208655302741918"
NEW_BSUID = "US.ENT.7Hq2mZ"

# The other purpose: what a recycled number's other owner was granted.
ELSEWHERE = Purpose.EDUCATIONAL_MATERIAL


def linked(
    subject: str, other: str, *, minutes: float, event_id: str | None = None
) -> ConsentEvent:
    return ConsentEvent(
        event_id=event_id or f"linked-{subject}-{other}-{minutes}",
        type=EventType.IDENTITY_LINKED,
        subject=subject,
        linked=other,
        occurred_at=at(minutes),
        source="whatsapp_webhook",
        evidence={"webhook": "contacts"},
    )


def changed(
    previous: str, subject: str, *, minutes: float, event_id: str | None = None
) -> ConsentEvent:
    return ConsentEvent(
        event_id=event_id or f"changed-{previous}-{subject}-{minutes}",
        type=EventType.IDENTIFIER_CHANGED,
        subject=subject,
        previous=previous,
        occurred_at=at(minutes),
        source="whatsapp_webhook",
        evidence={"message_id": "wamid.SYS", "system_type": "user_changed_number"},
    )


def people(*events: ConsentEvent) -> dict[str, tuple[SubjectState, OrderKey | None]]:
    """Given these events, arriving in this order, every identifier's person."""
    return fold_people(arrived(*events))


def state(*events: ConsentEvent, of: str) -> SubjectState:
    return people(*events)[of][0]


# ---------------------------------------------------------------- no identity events


def test_without_identity_events_each_identifier_is_its_own_person_as_fold_subjects_says() -> None:
    records = arrived(
        granted(Purpose.EVENT_REMINDER, subject=PHONE, occurred_at=at(0)),
        opted_out(subject=BSUID, occurred_at=at(1)),
        granted(ELSEWHERE, subject=NEW_PHONE, occurred_at=at(2)),
        revoked(Purpose.EVENT_REMINDER, subject=PHONE, occurred_at=at(3)),
        opted_in(subject=BSUID, occurred_at=at(4)),
    )

    folded = fold_people(records)

    assert folded == fold_subjects(records)
    assert set(folded) == {PHONE, BSUID, NEW_PHONE}
    assert all(state.identifiers == () for state, _ in folded.values())


def test_consent_events_are_not_identity_events_and_identity_events_are() -> None:
    assert not is_identity(arrived(opted_out())[0])
    assert is_identity(arrived(linked(PHONE, BSUID, minutes=0))[0])
    assert is_identity(arrived(changed(PHONE, NEW_PHONE, minutes=0))[0])


# ---------------------------------------------------------------- links


def test_a_stop_from_a_user_id_stops_the_number_it_is_linked_to_later() -> None:
    grant = granted(subject=PHONE, occurred_at=at(0))
    stop = opted_out(subject=BSUID, occurred_at=at(5))
    link = linked(PHONE, BSUID, minutes=10)

    before = state(grant, stop, of=PHONE)
    after = people(grant, stop, link)

    assert before.status is Status.OPTED_IN
    phone, bsuid = after[PHONE][0], after[BSUID][0]
    assert phone.opted_out
    assert phone.opt_out_event_id == stop.event_id
    assert Purpose.EVENT_REMINDER in phone.suspended
    assert phone.identifiers == bsuid.identifiers == (PHONE, BSUID)
    assert bsuid.opted_out


def test_linked_identifiers_share_one_state_and_the_latest_event_of_both_histories() -> None:
    records = arrived(
        granted(subject=PHONE, occurred_at=at(0)),
        opted_out(subject=BSUID, occurred_at=at(5)),
        linked(PHONE, BSUID, minutes=1),
    )

    folded = fold_people(records)

    (phone, phone_through), (bsuid, bsuid_through) = folded[PHONE], folded[BSUID]
    assert phone.model_copy(update={"subject": BSUID}) == bsuid
    assert phone.version == 2
    assert phone_through == bsuid_through == records[1].order_key()


def test_a_stop_through_the_user_id_of_a_known_link_stops_the_number() -> None:
    link = linked(PHONE, BSUID, minutes=0)
    stop = opted_out(subject=BSUID, occurred_at=at(5))

    phone = state(link, granted(subject=PHONE, occurred_at=at(1)), stop, of=PHONE)

    assert phone.opted_out
    assert phone.opt_out_event_id == stop.event_id
    assert phone.grants == {}


def test_a_grant_given_for_the_number_serves_its_linked_user_id() -> None:
    grant = granted(Purpose.EVENT_REMINDER, subject=PHONE, occurred_at=at(1))

    bsuid = state(linked(PHONE, BSUID, minutes=0), grant, of=BSUID)

    assert bsuid.status is Status.OPTED_IN
    assert bsuid.grants[Purpose.EVENT_REMINDER].event_id == grant.event_id


def test_a_link_without_consent_events_names_both_with_no_history() -> None:
    folded = people(linked(PHONE, BSUID, minutes=0))

    assert set(folded) == {PHONE, BSUID}
    for identifier in (PHONE, BSUID):
        person, through = folded[identifier]
        assert person.subject == identifier
        assert not person.has_history
        assert person.identifiers == (PHONE, BSUID)
        assert through is None


# ---------------------------------------------------------------- number changes


def test_a_changed_number_carries_the_grants_to_the_new_number() -> None:
    grant = granted(Purpose.EVENT_REMINDER, subject=PHONE, occurred_at=at(0))

    folded = people(grant, changed(PHONE, NEW_PHONE, minutes=5))

    new, new_through = folded[NEW_PHONE]
    assert new.grants[Purpose.EVENT_REMINDER].event_id == grant.event_id
    assert new.version == 1
    assert new_through is not None


def test_the_old_number_starts_afresh_even_for_events_before_the_change() -> None:
    folded = people(
        granted(subject=PHONE, occurred_at=at(0)),
        opted_out(subject=PHONE, occurred_at=at(1)),
        changed(PHONE, NEW_PHONE, minutes=5),
    )

    old, old_through = folded[PHONE]
    assert old.version == 0
    assert not old.has_history
    assert not old.opted_out
    assert old.grants == {} and old.suspended == {}
    assert old_through is None


def test_a_grant_to_the_old_number_after_the_change_is_its_new_owners_alone() -> None:
    mine = granted(Purpose.EVENT_REMINDER, subject=PHONE, occurred_at=at(0))
    theirs = granted(ELSEWHERE, subject=PHONE, occurred_at=at(10))

    folded = people(mine, changed(PHONE, NEW_PHONE, minutes=5), theirs)

    new, old = folded[NEW_PHONE][0], folded[PHONE][0]
    assert set(new.grants) == {Purpose.EVENT_REMINDER}
    assert set(old.grants) == {ELSEWHERE}
    assert old.grants[ELSEWHERE].event_id == theirs.event_id
    assert old.version == 1


def test_a_stop_before_the_number_change_is_honoured_on_the_new_number() -> None:
    stop = opted_out(subject=PHONE, occurred_at=at(1))

    new = state(
        granted(subject=PHONE, occurred_at=at(0)),
        stop,
        changed(PHONE, NEW_PHONE, minutes=5),
        of=NEW_PHONE,
    )

    assert new.opted_out
    assert new.opt_out_event_id == stop.event_id


def test_a_stop_from_the_new_number_after_the_change_stops_the_person() -> None:
    stop = opted_out(subject=NEW_PHONE, occurred_at=at(10))

    new = state(
        granted(subject=PHONE, occurred_at=at(0)),
        changed(PHONE, NEW_PHONE, minutes=5),
        stop,
        of=NEW_PHONE,
    )

    assert new.opted_out
    assert new.opt_out_event_id == stop.event_id
    assert Purpose.EVENT_REMINDER in new.suspended


def test_a_stop_to_the_old_number_after_the_change_does_not_touch_the_person() -> None:
    stop = opted_out(subject=PHONE, occurred_at=at(10))

    folded = people(
        granted(subject=PHONE, occurred_at=at(0)), changed(PHONE, NEW_PHONE, minutes=5), stop
    )

    new, old = folded[NEW_PHONE][0], folded[PHONE][0]
    assert not new.opted_out
    assert new.status is Status.OPTED_IN
    assert old.opted_out
    assert old.opt_out_event_id == stop.event_id


def test_a_recycled_numbers_history_before_it_changed_hands_does_not_reach_its_new_owner() -> None:
    # The new number's previous owner had a grant of their own, then a STOP.
    their_grant = granted(ELSEWHERE, subject=NEW_PHONE, occurred_at=at(0))
    their_stop = opted_out(subject=NEW_PHONE, occurred_at=at(1))
    my_grant = granted(Purpose.EVENT_REMINDER, subject=PHONE, occurred_at=at(2))

    records = arrived(their_grant, their_stop, my_grant, changed(PHONE, NEW_PHONE, minutes=5))

    new, through = fold_people(records)[NEW_PHONE]
    assert not new.opted_out
    assert set(new.grants) == {Purpose.EVENT_REMINDER}
    assert ELSEWHERE not in new.suspended
    assert new.version == 1
    assert through == records[2].order_key()


def test_a_linked_user_id_stays_with_the_person_when_the_number_changes() -> None:
    stop = opted_out(subject=BSUID, occurred_at=at(1))

    folded = people(linked(PHONE, BSUID, minutes=0), stop, changed(PHONE, NEW_PHONE, minutes=5))

    new, bsuid, old = folded[NEW_PHONE][0], folded[BSUID][0], folded[PHONE][0]
    assert new.opted_out and bsuid.opted_out
    assert new.identifiers == bsuid.identifiers == (NEW_PHONE, BSUID)
    assert old.identifiers == ()
    assert not old.opted_out


def test_a_changed_user_id_moves_the_person_as_a_changed_number_does() -> None:
    stop = opted_out(subject=BSUID, occurred_at=at(1))

    folded = people(
        linked(PHONE, BSUID, minutes=0),
        stop,
        changed(BSUID, NEW_BSUID, minutes=5),
        granted(ELSEWHERE, subject=BSUID, occurred_at=at(10)),
    )

    new, phone, old = folded[NEW_BSUID][0], folded[PHONE][0], folded[BSUID][0]
    assert new.opted_out
    assert new.opt_out_event_id == stop.event_id
    assert phone.opted_out
    assert new.identifiers == phone.identifiers == (PHONE, NEW_BSUID)
    assert old.identifiers == ()
    assert not old.opted_out
    assert set(old.grants) == {ELSEWHERE}


# ---------------------------------------------------------------- linked_sets, connected


A, B, C = "+79161234567", "US.1111", "US.2222"
D, E, F = "+447911123456", "US.3333", "+4915123456789"


def test_linked_sets_are_the_transitive_closure_of_links_and_changes() -> None:
    records = arrived(
        linked(A, B, minutes=0),
        linked(C, B, minutes=1),
        linked(D, E, minutes=2),
        changed(D, F, minutes=3),
        opted_out(subject="+12025550143", occurred_at=at(4)),
    )

    sets = linked_sets(records)

    assert sets == {
        A: frozenset({A, B, C}),
        B: frozenset({A, B, C}),
        C: frozenset({A, B, C}),
        D: frozenset({D, E, F}),
        E: frozenset({D, E, F}),
        F: frozenset({D, E, F}),
    }


def test_connected_adds_every_identifier_linked_however_indirectly() -> None:
    records = arrived(linked(A, B, minutes=0), linked(C, B, minutes=1), linked(D, E, minutes=2))

    assert connected([A], records) == {A, B, C}
    assert connected([C, E], records) == {A, B, C, D, E}
    assert connected([F], records) == {F}
    assert connected([], records) == frozenset()


def test_a_consent_event_carrying_a_stray_previous_connects_nothing() -> None:
    stray = ConsentEvent(
        event_id="stray",
        type=EventType.OPTED_OUT,
        subject=A,
        occurred_at=at(0),
        source="whatsapp_reply",
        previous=D,
    )

    assert stray.other_identifier is None
    assert linked_sets(arrived(stray)) == {}
    assert connected([A], arrived(stray)) == {A}


# ---------------------------------------------------------------- stale links, one instant


def test_a_link_from_before_a_change_delivered_late_does_not_give_the_old_number_back() -> None:
    history = [
        granted(Purpose.EVENT_REMINDER, subject=PHONE, occurred_at=at(0)),
        linked(PHONE, BSUID, minutes=1),
        changed(PHONE, NEW_PHONE, minutes=5),
        changed(BSUID, NEW_BSUID, minutes=5),
        # A webhook about an old message, received after the change: stamped late.
        linked(PHONE, BSUID, minutes=9, event_id="late-link"),
    ]

    old = state(*history, of=PHONE)

    assert (old.has_history, old.status, old.identifiers) == (False, Status.UNKNOWN, ())
    assert state(*history, of=NEW_PHONE).identifiers == (NEW_PHONE, NEW_BSUID)


def test_a_late_link_of_the_old_number_to_the_persons_current_id_is_stale_too() -> None:
    history = [
        granted(Purpose.EVENT_REMINDER, subject=PHONE, occurred_at=at(0)),
        linked(PHONE, BSUID, minutes=1),
        changed(PHONE, NEW_PHONE, minutes=5),
        linked(PHONE, BSUID, minutes=9, event_id="late-link"),
    ]

    assert state(*history, of=PHONE).has_history is False
    assert state(*history, of=BSUID).identifiers == (NEW_PHONE, BSUID)


def test_a_stop_from_the_new_number_in_the_instant_of_the_change_binds_the_person() -> None:
    for order in ("stop first", "change first"):
        events = [
            changed(PHONE, NEW_PHONE, minutes=5),
            opted_out(subject=NEW_PHONE, occurred_at=at(5), event_id="stop-new"),
        ]
        if order == "stop first":
            events.reverse()
        history = [granted(Purpose.EVENT_REMINDER, subject=PHONE, occurred_at=at(0)), *events]

        assert state(*history, of=NEW_PHONE).opted_out, order
