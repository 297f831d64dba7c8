"""What an erasure leaves of a person (shared/consent/suppression.py): their past is
dropped when met again, and whatever is folded for them later stays stopped."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.consent.erasure_job import people_of
from shared.consent.fold import fold_subjects
from shared.consent.people import fold_people
from shared.consent.state import LoggedEvent, Status, SubjectState
from shared.consent.suppression import Suppression, mark_erased, without_erased
from shared.contract.events import ConsentEvent

ERASED_AT = datetime(2026, 12, 1, 12, tzinfo=UTC)
GONE = Suppression("erasure-1", ERASED_AT - timedelta(days=1), ERASED_AT)
PHONE, BSUID, OTHER = "+79161234567", "US.13491208655302741918", "+79251234567"


def logged(subject: str, kind: str, at: datetime, offset: int, **fields: object) -> LoggedEvent:
    body: dict[str, object] = {
        "event_id": f"e-{offset}",
        "type": kind,
        "subject": subject,
        "occurred_at": at,
        "source": "event_registration",
        "purposes": ["event_reminder"],
        "evidence": {"registration_id": "R-1"},
    }
    if kind == "OptedOut":
        body = {**body, "source": "whatsapp_reply", "evidence": {"text": "STOP"}}
    if kind == "IdentityLinked":
        body = {**body, "source": "whatsapp_webhook", "evidence": {"webhook": "contacts"}}
        del body["purposes"]
    body.update(fields)
    return LoggedEvent.from_log(ConsentEvent.model_validate(body), at, 0, offset)


def test_the_past_of_an_erased_identifier_is_dropped_but_its_links_kept() -> None:
    before, after = ERASED_AT - timedelta(seconds=1), ERASED_AT + timedelta(seconds=1)
    events = [
        logged(PHONE, "ConsentGranted", before, 0),
        logged(OTHER, "IdentityLinked", before, 1, linked=PHONE),  # names it second
        logged(OTHER, "ConsentGranted", before, 2),
        logged(PHONE, "ConsentGranted", after, 3),
    ]
    kept = without_erased(events, {PHONE: GONE})
    # The link joins OTHER to the erased person: applied, it marks OTHER's state too.
    assert [e.offset for e in kept] == [1, 2, 3]
    other, _ = fold_people(kept)[OTHER]
    assert mark_erased(other, {PHONE: GONE}).erasure_event_id == "erasure-1"
    assert without_erased(events, {}) == events


def test_a_state_folded_after_the_erasure_is_stopped_by_it() -> None:
    after = ERASED_AT + timedelta(minutes=1)
    [(state, _)] = fold_subjects([logged(PHONE, "ConsentGranted", after, 0)]).values()
    assert state.status is Status.OPTED_IN
    marked = mark_erased(state, {PHONE: GONE})
    assert (marked.status, marked.erasure_event_id) == (Status.OPTED_OUT, "erasure-1")
    assert marked.erasure_requested_at == GONE.requested_at
    assert mark_erased(state, {OTHER: GONE}) is state, "another's erasure changes nothing"


def test_a_person_is_marked_by_any_of_their_identifiers() -> None:
    state = SubjectState(subject=PHONE, identifiers=(BSUID, PHONE))
    assert mark_erased(state, {BSUID: GONE}).erasure_event_id == "erasure-1"
    earlier = Suppression("erasure-0", GONE.requested_at, ERASED_AT - timedelta(days=2))
    both = mark_erased(state, {BSUID: GONE, PHONE: earlier})
    assert both.erasure_event_id == "erasure-0", "the earliest erasure carried out counts"


def test_a_state_keeps_its_own_erasure_request() -> None:
    own = SubjectState(subject=PHONE, erasure_event_id="own", erasure_requested_at=ERASED_AT)
    assert mark_erased(own, {PHONE: GONE}) is own


def test_the_due_states_are_grouped_into_people() -> None:
    at = ERASED_AT
    states = [
        SubjectState(
            subject=PHONE, identifiers=(BSUID, PHONE), erasure_event_id="r", erasure_requested_at=at
        ),
        SubjectState(
            subject=BSUID, identifiers=(BSUID, PHONE), erasure_event_id="r", erasure_requested_at=at
        ),
        SubjectState(subject=OTHER, erasure_event_id="s", erasure_requested_at=at),
        SubjectState(subject="+79031234567"),  # no request: not erased
    ]
    people = people_of(states)
    assert [(p.identifiers, p.erasure_event_id) for p in people] == [
        ((PHONE, BSUID), "r"),
        ((OTHER,), "s"),
    ]


subjects = st.sampled_from([PHONE, BSUID, OTHER])
times = st.integers(-3, 3).map(lambda m: ERASED_AT + timedelta(minutes=m))


@given(
    st.lists(st.tuples(subjects, times, st.sampled_from(["ConsentGranted", "OptedOut"]))),
    st.sets(subjects),
)
def test_no_event_of_an_erased_past_survives_and_no_other_is_lost(
    drawn: list[tuple[str, datetime, str]], erased: set[str]
) -> None:
    events = [logged(s, kind, at, i) for i, (s, at, kind) in enumerate(drawn)]
    suppressed = dict.fromkeys(erased, GONE)
    kept = without_erased(events, suppressed)
    assert kept == [e for e in events if not (e.event.subject in erased and e.log_time < ERASED_AT)]
    for state, _ in fold_subjects(kept).values():
        marked = mark_erased(state, suppressed)
        if state.subject in erased:
            assert marked.status is Status.OPTED_OUT
            assert mark_erased(marked, suppressed) == marked
        else:
            assert marked == state
