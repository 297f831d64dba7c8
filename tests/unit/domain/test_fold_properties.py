"""Properties of fold_subject that must hold for any history (hypothesis).

Histories mix every event type, share occurred_at values (ties), spread over
several partitions with broker times at or after occurred_at, and include
redeliveries of the same record."""

from collections import defaultdict
from datetime import timedelta

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shared.consent.fold import evolve, fold_onto, fold_subject, fold_subjects
from shared.consent.state import LoggedEvent, Status
from shared.contract.events import ConsentEvent, EventType
from shared.contract.purposes import Purpose
from tests.unit.domain.builders import (
    SUBJECT,
    T0,
    erasure_request,
    granted,
    logged,
    opted_in,
    opted_out,
    revoked,
)

PROPERTY = settings(max_examples=150, deadline=None)

OPT_INS = (EventType.OPTED_IN, EventType.CONSENT_GRANTED)

purposes = st.lists(st.sampled_from(Purpose), min_size=1, max_size=3, unique=True)
minutes = st.integers(0, 20).map(lambda m: T0 + timedelta(minutes=m))


@st.composite
def consent_events(draw: st.DrawFn, event_id: str) -> ConsentEvent:
    kind = draw(st.sampled_from(EventType))
    occurred_at = draw(minutes)
    if kind is EventType.CONSENT_GRANTED:
        ttl = draw(st.none() | st.integers(1, 30))
        return granted(
            *draw(purposes),
            event_id=event_id,
            occurred_at=occurred_at,
            expires_at=None if ttl is None else occurred_at + timedelta(minutes=ttl),
        )
    if kind is EventType.CONSENT_REVOKED:
        return revoked(*draw(st.just([]) | purposes), event_id=event_id, occurred_at=occurred_at)
    if kind is EventType.OPTED_OUT:
        return opted_out(event_id=event_id, occurred_at=occurred_at)
    if kind is EventType.ERASURE_REQUESTED:
        return erasure_request(event_id=event_id, occurred_at=occurred_at)
    return opted_in(event_id=event_id, occurred_at=occurred_at)


@st.composite
def histories(draw: st.DrawFn, max_events: int = 12) -> list[LoggedEvent]:
    """Records in arrival order, each with its own log position."""
    count = draw(st.integers(0, max_events))
    events = [draw(consent_events(f"e{i}")) for i in range(count)]
    redelivered = draw(st.lists(st.sampled_from(events), max_size=3)) if events else []
    next_offset: dict[int, int] = defaultdict(int)
    records = []
    for event in events + redelivered:
        partition = draw(st.integers(0, 2))
        delay = timedelta(minutes=draw(st.integers(0, 5)))
        records.append(logged(event, partition, next_offset[partition], event.occurred_at + delay))
        next_offset[partition] += 1
    return records


def in_fold_order(records: list[LoggedEvent]) -> list[ConsentEvent]:
    """The contract's order, each event_id once: an independent restatement."""
    seen: set[str] = set()
    events = []
    for record in sorted(
        records, key=lambda r: (r.event.occurred_at, r.log_time, r.partition, r.offset)
    ):
        if record.event.event_id not in seen:
            seen.add(record.event.event_id)
            events.append(record.event)
    return events


@PROPERTY
@given(data=st.data(), records=histories())
def test_any_arrival_order_of_the_same_records_gives_the_same_state(
    data: st.DataObject, records: list[LoggedEvent]
) -> None:
    shuffled = data.draw(st.permutations(records))

    assert fold_subject(SUBJECT, shuffled) == fold_subject(SUBJECT, records)


@PROPERTY
@given(records=histories())
def test_folding_is_deterministic_and_accepts_any_iterable(records: list[LoggedEvent]) -> None:
    once = fold_subject(SUBJECT, records)

    assert fold_subject(SUBJECT, records) == once
    assert fold_subject(SUBJECT, iter(records)) == once
    assert fold_subject(SUBJECT, tuple(reversed(records))) == once


@PROPERTY
@given(data=st.data(), records=histories())
def test_fold_of_a_prefix_then_evolve_of_the_rest_equals_the_whole_fold(
    data: st.DataObject, records: list[LoggedEvent]
) -> None:
    ordered = sorted(records, key=LoggedEvent.order_key)
    events = in_fold_order(records)
    split = data.draw(st.integers(0, len(events)))
    prefix_ids = {e.event_id for e in events[:split]}

    state = fold_subject(SUBJECT, [r for r in ordered if r.event.event_id in prefix_ids])
    for event in events[split:]:
        state = evolve(state, event)

    assert state == fold_subject(SUBJECT, records)


@PROPERTY
@given(data=st.data(), records=histories())
def test_folding_on_with_later_new_events_equals_folding_the_whole_history(
    data: st.DataObject, records: list[LoggedEvent]
) -> None:
    """The projector's shortcut: events that all sort after a state's history and
    repeat none of its ids are folded onto the stored state."""
    ordered = sorted(records, key=LoggedEvent.order_key)
    split = data.draw(st.integers(0, len(ordered)))
    prefix = ordered[:split]
    seen = {r.event.event_id for r in prefix}
    later = [r for r in ordered[split:] if r.event.event_id not in seen]
    stored = fold_subject(SUBJECT, prefix)

    folded_on = fold_onto(stored, data.draw(st.permutations(later)))

    assert folded_on == fold_subject(SUBJECT, prefix + later)
    # And the order key it is stored with: that of the latest event it was folded from.
    first: dict[str, LoggedEvent] = {}
    for record in sorted(prefix + later, key=LoggedEvent.log_key):
        first.setdefault(record.event.event_id, record)
    folded = fold_subjects(prefix + later).get(SUBJECT)
    assert (folded[1] if folded else None) == max(
        (r.order_key() for r in first.values()), default=None
    )


@PROPERTY
@given(records=histories())
def test_no_history_gives_consent_after_an_opt_out_unless_a_later_opt_in_follows(
    records: list[LoggedEvent],
) -> None:
    events = in_fold_order(records)
    opt_outs = [i for i, e in enumerate(events) if e.type is EventType.OPTED_OUT]

    state = fold_subject(SUBJECT, records)

    if not opt_outs:
        assert not state.opted_out
        return
    latest = opt_outs[-1]
    if any(e.type in OPT_INS for e in events[latest + 1 :]):
        assert not state.opted_out
    else:
        assert state.opted_out
        assert state.grants == {}
        assert state.status is Status.OPTED_OUT
        assert state.opt_out_event_id == events[latest].event_id


@PROPERTY
@given(records=histories(), late=st.lists(st.sampled_from(OPT_INS), min_size=1, max_size=4))
def test_late_older_opt_ins_never_undo_an_opt_out(
    records: list[LoggedEvent], late: list[EventType]
) -> None:
    # Every history ends opted out: a STOP after all of it (filtering for opted-out
    # histories instead throws most examples away, and hypothesis may give up).
    last = max((r.event.occurred_at for r in records), default=T0)
    last_log = max((r.log_time for r in records), default=T0)
    stop = opted_out(event_id="final-stop", occurred_at=last + timedelta(minutes=1))
    records = [*records, logged(stop, 0, 1000, max(last_log, stop.occurred_at))]
    state = fold_subject(SUBJECT, records)
    assume(state.opted_out and state.opted_out_at is not None)
    assert state.opted_out_at is not None
    arrival = max(r.log_time for r in records) + timedelta(hours=1)
    stragglers = []
    for i, kind in enumerate(late):
        before = state.opted_out_at - timedelta(seconds=i + 1)
        event = (
            granted(Purpose.EVENT_REMINDER, event_id=f"late-{i}", occurred_at=before)
            if kind is EventType.CONSENT_GRANTED
            else opted_in(event_id=f"late-{i}", occurred_at=before)
        )
        stragglers.append(logged(event, partition=3, offset=i, log_time=arrival))

    after = fold_subject(SUBJECT, records + stragglers)

    assert after.opted_out
    assert after.grants == {}


@PROPERTY
@given(records=histories())
def test_every_grant_is_the_latest_grant_of_its_purpose_and_not_revoked_since(
    records: list[LoggedEvent],
) -> None:
    events = in_fold_order(records)

    state = fold_subject(SUBJECT, records)

    for purpose, grant in state.grants.items():
        position = next(i for i, e in enumerate(events) if e.event_id == grant.event_id)
        source = events[position]
        assert source.type is EventType.CONSENT_GRANTED
        assert purpose in (source.purposes or ())
        assert (grant.source, grant.granted_at, grant.expires_at) == (
            source.source,
            source.occurred_at,
            source.expires_at,
        )
        for later in events[position + 1 :]:
            assert not (
                later.type is EventType.CONSENT_GRANTED and purpose in (later.purposes or ())
            )
            assert not (
                later.type is EventType.CONSENT_REVOKED
                and (later.purposes is None or purpose in later.purposes)
            )


@PROPERTY
@given(records=histories())
def test_version_counts_distinct_events_and_last_event_id_is_the_last_folded(
    records: list[LoggedEvent],
) -> None:
    events = in_fold_order(records)

    state = fold_subject(SUBJECT, records)

    assert state.version == len(events)
    assert state.last_event_id == (events[-1].event_id if events else None)
    assert state.has_history == bool(events)


@PROPERTY
@given(records=histories())
def test_after_an_erasure_request_the_person_is_stopped_whatever_follows(
    records: list[LoggedEvent],
) -> None:
    events = in_fold_order(records)
    requests = [e for e in events if e.type is EventType.ERASURE_REQUESTED]

    state = fold_subject(SUBJECT, records)

    if not requests:
        assert state.erasure_event_id is None
        return
    # The first request counts: a repeat must not move the erasure's deadline.
    assert state.erasure_event_id == requests[0].event_id
    assert state.erasure_requested_at == requests[0].occurred_at
    assert state.status is Status.OPTED_OUT
