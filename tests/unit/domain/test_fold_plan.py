"""plan_folds: which subjects a batch folds onto their stored states, which it refolds."""

from hypothesis import given
from hypothesis import strategies as st

from shared.consent.event_identity import event_id_of
from shared.consent.fold import fold_onto, fold_subject, fold_subjects
from shared.consent.fold_plan import by_subject, plan_folds
from shared.consent.state import LoggedEvent
from shared.kafka.log_order import first_per_id
from tests.unit.domain.builders import OTHER_SUBJECT, SUBJECT, at, granted, logged, opted_out
from tests.unit.domain.test_fold_properties import PROPERTY, histories


def test_events_sorting_after_the_stored_state_are_folded_on() -> None:
    stored = logged(granted(occurred_at=at(0)), offset=0)
    new = [logged(opted_out(occurred_at=at(5)), offset=1)]

    fold_on, refold = plan_folds({SUBJECT: stored.order_key()}, {SUBJECT: new})

    assert refold == []
    assert list(fold_on[SUBJECT].events) == new
    assert fold_on[SUBJECT].through == new[0].order_key()


def test_a_late_event_sorting_inside_the_history_refolds_it() -> None:
    stored = logged(opted_out(occurred_at=at(10)), offset=0)
    late = logged(granted(occurred_at=at(5)), offset=1, log_time=at(11))
    on_time = logged(granted(occurred_at=at(12)), offset=2)

    fold_on, refold = plan_folds({SUBJECT: stored.order_key()}, {SUBJECT: [on_time, late]})

    assert fold_on == {}
    assert refold == [SUBJECT]


def test_a_subject_with_no_stored_state_or_no_through_is_refolded() -> None:
    new = {SUBJECT: [logged(granted())], OTHER_SUBJECT: [logged(granted(subject=OTHER_SUBJECT))]}

    fold_on, refold = plan_folds({SUBJECT: None}, new)

    assert fold_on == {}
    assert refold == [SUBJECT, OTHER_SUBJECT]


def test_the_through_of_a_fold_on_is_the_latest_new_event() -> None:
    stored = logged(granted(occurred_at=at(0)))
    new = [logged(granted(occurred_at=at(9)), offset=1), logged(opted_out(occurred_at=at(3)), 2)]

    fold_on, _ = plan_folds({SUBJECT: stored.order_key()}, {SUBJECT: new})

    assert fold_on[SUBJECT].through == new[0].order_key()


def test_events_are_grouped_by_subject_in_the_order_given() -> None:
    a1, b1, a2 = (
        logged(granted(event_id="a1")),
        logged(granted(event_id="b1", subject=OTHER_SUBJECT)),
        logged(granted(event_id="a2"), offset=1),
    )

    assert by_subject([a1, b1, a2]) == {SUBJECT: [a1, a2], OTHER_SUBJECT: [b1]}


@PROPERTY
@given(data=st.data(), records=histories())
def test_folding_on_where_the_plan_says_so_equals_refolding_the_whole_history(
    data: st.DataObject, records: list[LoggedEvent]
) -> None:
    """Any part of the table's events stored and folded, the rest new: the plan's
    fold on gives the whole history's state and order key."""
    table = list(first_per_id(records, event_id_of).values())
    stored_mask = data.draw(st.lists(st.booleans(), min_size=len(table), max_size=len(table)))
    stored = [e for e, kept in zip(table, stored_mask, strict=True) if kept]
    new = [e for e, kept in zip(table, stored_mask, strict=True) if not kept]
    new_by_subject = by_subject(data.draw(st.permutations(new)))
    folded = fold_subjects(stored).get(SUBJECT)
    throughs = {SUBJECT: folded[1]} if folded else {}

    fold_on, refold = plan_folds(throughs, new_by_subject)

    whole = fold_subjects(table).get(SUBJECT)
    if SUBJECT in fold_on:
        assert folded is not None
        assert fold_onto(folded[0], fold_on[SUBJECT].events) == fold_subject(SUBJECT, table)
        assert whole is not None and fold_on[SUBJECT].through == whole[1]
    else:
        assert refold == ([SUBJECT] if new else [])


@PROPERTY
@given(records=histories(), late=st.integers(0, 30))
def test_the_plan_folds_on_whenever_every_new_event_sorts_after_the_stored_state(
    records: list[LoggedEvent], late: int
) -> None:
    table = list(first_per_id(records, event_id_of).values())
    folded = fold_subjects(table).get(SUBJECT)
    newer = logged(granted(event_id="new", occurred_at=at(late)), 9, 0, at(60))
    throughs = {SUBJECT: folded[1] if folded else None}

    fold_on, refold = plan_folds(throughs, {SUBJECT: [newer]})

    sorts_after = folded is not None and newer.order_key() > folded[1]
    assert (SUBJECT in fold_on) is sorts_after
    assert (refold == [SUBJECT]) is not sorts_after
