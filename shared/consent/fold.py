"""evolve(state, event) -> state, and the fold of a whole history."""

from collections import defaultdict
from collections.abc import Iterable

from shared.consent.state import Grant, LoggedEvent, Revocation, SubjectState
from shared.contract.events import ConsentEvent, EventType
from shared.contract.purposes import Purpose


def fold_subject(subject: str, history: Iterable[LoggedEvent]) -> SubjectState:
    """The state is a pure function of the history in `occurred_at` order, whatever
    order the events arrived in: a late older opt-in lands before a newer opt-out."""
    # An event_id seen before is ignored (contract section 2): "before" is log
    # order, so a reused id can never displace the record that came first.
    first: dict[str, LoggedEvent] = {}
    for logged in sorted(history, key=LoggedEvent.log_key):
        first.setdefault(logged.event.event_id, logged)
    state = SubjectState(subject=subject)
    for logged in sorted(first.values(), key=LoggedEvent.order_key):
        state = evolve(state, logged.event)
    return state


def fold_subjects(events: Iterable[LoggedEvent]) -> dict[str, SubjectState]:
    """The events of many subjects, each subject's history folded on its own."""
    histories: dict[str, list[LoggedEvent]] = defaultdict(list)
    for logged in events:
        histories[logged.event.subject].append(logged)
    return {subject: fold_subject(subject, history) for subject, history in histories.items()}


def evolve(state: SubjectState, event: ConsentEvent) -> SubjectState:
    match event.type:
        case EventType.CONSENT_GRANTED:
            state = _granted(state, event)
        case EventType.CONSENT_REVOKED:
            state = _revoked(state, event)
        case EventType.OPTED_OUT:
            state = _opted_out(state, event)
        case EventType.OPTED_IN:
            state = _opted_in(state, event)
    return state.model_copy(update={"last_event_id": event.event_id, "version": state.version + 1})


def _granted(state: SubjectState, event: ConsentEvent) -> SubjectState:
    # A grant newer than an opt-out is a fresh opt-in (contract section 2): it
    # ends the opt-out for the purposes it names; the others stay suspended
    # until an OptedIn restores them.
    grant = Grant(
        source=event.source,
        granted_at=event.occurred_at,
        expires_at=event.expires_at,
        event_id=event.event_id,
    )
    purposes = event.purposes or ()
    grants = {**state.grants, **dict.fromkeys(purposes, grant)}
    revoked = {p: r for p, r in state.revoked.items() if p not in purposes}
    suspended = {p: g for p, g in state.suspended.items() if p not in purposes}
    return state.model_copy(
        update={
            "grants": grants,
            "revoked": revoked,
            "suspended": suspended,
            "opted_out": False,
        }
    )


def _revoked(state: SubjectState, event: ConsentEvent) -> SubjectState:
    targets = set(Purpose) if event.purposes is None else set(event.purposes)
    revoked = dict(state.revoked)
    for purpose in targets:
        grant = state.grants.get(purpose) or state.suspended.get(purpose)
        if grant is not None:
            revoked[purpose] = Revocation(
                grant=grant, revoked_at=event.occurred_at, event_id=event.event_id
            )
    return state.model_copy(
        update={
            "grants": {p: g for p, g in state.grants.items() if p not in targets},
            "suspended": {p: g for p, g in state.suspended.items() if p not in targets},
            "revoked": revoked,
        }
    )


def _opted_out(state: SubjectState, event: ConsentEvent) -> SubjectState:
    # Clause 4.3: everything stops. A second opt-out keeps what the first suspended,
    # so that one later START restores the same purposes.
    return state.model_copy(
        update={
            "grants": {},
            "suspended": {**state.suspended, **state.grants},
            "opted_out": True,
            "opt_out_event_id": event.event_id,
            "opted_out_at": event.occurred_at,
        }
    )


def _opted_in(state: SubjectState, event: ConsentEvent) -> SubjectState:
    restored = {p: g for p, g in state.suspended.items() if not g.expired_at(event.occurred_at)}
    return state.model_copy(
        update={
            "grants": {**state.grants, **restored},
            "suspended": {},
            "opted_out": False,
        }
    )
