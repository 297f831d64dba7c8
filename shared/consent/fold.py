"""Folds a subject's history into its state (`fold_subject`, `fold_onto`,
`fold_subjects`); `evolve` is one step of it."""

from collections.abc import Iterable
from datetime import datetime, timedelta
from operator import itemgetter

from shared.consent.event_identity import event_id_of
from shared.consent.fold_plan import by_subject
from shared.consent.state import (
    Grant,
    LoggedEvent,
    OrderKey,
    PlatformStop,
    Revocation,
    SubjectState,
)
from shared.contract.events import CONSENT_TYPES, ConsentEvent, EventType
from shared.contract.purposes import Purpose
from shared.kafka.log_order import first_per_id

_ALL_PURPOSES = frozenset(Purpose)
# WhatsApp error 131049 (its per-user marketing limit): retry no sooner than 24 h.
PLATFORM_HOLD = timedelta(hours=24)
_NO_HISTORY = SubjectState(subject="")


def fold_subject(subject: str, history: Iterable[LoggedEvent]) -> SubjectState:
    """The state is a pure function of the history in `occurred_at` order, whatever
    order the events arrived in: a late older opt-in lands before a newer opt-out."""
    return _fold(_Folding.empty(subject), history)[0]


def fold_onto(state: SubjectState, later: Iterable[LoggedEvent]) -> SubjectState:
    """Folds `later` onto `state`: equal to folding the whole history again when
    every event of `later` sorts after all those `state` was folded from and repeats
    none of their ids (the projector checks that before it takes this shortcut)."""
    return _fold(_Folding(state), later)[0]


def fold_subjects(events: Iterable[LoggedEvent]) -> dict[str, tuple[SubjectState, OrderKey]]:
    """Folds the events of many subjects, each subject's history on its own; with
    each state, the order key of the latest event folded into it."""
    folded: dict[str, tuple[SubjectState, OrderKey]] = {}
    for subject, history in by_subject(events).items():
        state, through = _fold(_Folding.empty(subject), history)
        if through is not None:  # a history holds at least one event
            folded[subject] = (state, through)
    return folded


def _fold(
    folding: "_Folding", later: Iterable[LoggedEvent]
) -> tuple[SubjectState, OrderKey | None]:
    """Applies `later` in order to `folding`; returns the state, and the order key of
    the last event applied (None: none was)."""
    # An event_id seen before is ignored (contract section 2): "before" is log
    # order, so a reused id can never displace the record that came first.
    first = first_per_id(later, event_id_of)
    # Each order key is computed once; sorting on it alone keeps log order on ties.
    keyed = sorted(((logged.order_key(), logged) for logged in first.values()), key=_KEY)
    for _, logged in keyed:
        folding.apply(logged.event, logged.authenticated)
    return folding.state(), keyed[-1][0] if keyed else None


_KEY = itemgetter(0)


def evolve(state: SubjectState, event: ConsentEvent) -> SubjectState:
    """Takes one step of the fold: `state` is left as it was."""
    folding = _Folding(state)
    folding.apply(event)
    return folding.state()


class _Folding:
    """Holds a subject's state while its history is applied: mutable, so that a history
    of n events builds n small dicts rather than n frozen models (the rebuild folds
    millions). Only `state()` lets it out, frozen."""

    __slots__ = (
        "erasure_event_id",
        "erasure_requested_at",
        "failed_deliveries",
        "grants",
        "held_until",
        "last_event_id",
        "opt_out_authenticated",
        "opt_out_event_id",
        "opted_out",
        "opted_out_at",
        "paused",
        "revoked",
        "subject",
        "suspended",
        "timezone",
        "version",
    )

    @classmethod
    def empty(cls, subject: str) -> "_Folding":
        # Not from SubjectState(subject=...): pydantic copies its defaults per instance.
        folding = cls(_NO_HISTORY)
        folding.subject = subject
        return folding

    def __init__(self, state: SubjectState) -> None:
        self.subject = state.subject
        self.grants = dict(state.grants)
        self.revoked = dict(state.revoked)
        self.suspended = dict(state.suspended)
        self.opted_out = state.opted_out
        self.opt_out_event_id = state.opt_out_event_id
        self.opt_out_authenticated = state.opt_out_authenticated
        self.opted_out_at = state.opted_out_at
        self.last_event_id = state.last_event_id
        self.version = state.version
        self.timezone = state.timezone
        self.paused = dict(state.paused)
        self.held_until = state.held_until
        self.failed_deliveries = dict(state.failed_deliveries)
        self.erasure_event_id = state.erasure_event_id
        self.erasure_requested_at = state.erasure_requested_at

    def state(self) -> SubjectState:
        return SubjectState(
            subject=self.subject,
            grants=dict(self.grants),
            revoked=dict(self.revoked),
            suspended=dict(self.suspended),
            opted_out=self.opted_out,
            opt_out_event_id=self.opt_out_event_id,
            opt_out_authenticated=self.opt_out_authenticated,
            opted_out_at=self.opted_out_at,
            last_event_id=self.last_event_id,
            version=self.version,
            timezone=self.timezone,
            paused=dict(self.paused),
            held_until=self.held_until,
            failed_deliveries=dict(self.failed_deliveries),
            erasure_event_id=self.erasure_event_id,
            erasure_requested_at=self.erasure_requested_at,
        )

    def apply(self, event: ConsentEvent, authenticated: bool = True) -> None:
        match event.type:
            case EventType.CONSENT_GRANTED:
                self._apply_grant(event)
            case EventType.CONSENT_REVOKED:
                self._apply_revocation(event)
            case EventType.OPTED_OUT:
                self._apply_opt_out(event, authenticated)
                self.failed_deliveries = {}
            case EventType.OPTED_IN:
                self._apply_opt_in(event.occurred_at)
                self.failed_deliveries = {}
            case EventType.MARKETING_STOPPED:
                self._apply_platform_stop(event)
            case EventType.MARKETING_RESUMED:
                self._apply_platform_resume()
            case EventType.DELIVERY_LIMITED:
                until = event.occurred_at + PLATFORM_HOLD
                self.held_until = until if self.held_until is None else max(self.held_until, until)
            case EventType.DELIVERY_FAILED:
                failed = self.failed_deliveries
                failed[event.subject] = failed.get(event.subject, 0) + 1
            case EventType.USER_MESSAGED:
                # The person wrote: whatever was undeliverable reached them again.
                self.failed_deliveries = {}
            case EventType.ERASURE_REQUESTED:
                self._apply_erasure_request(event)
        if event.type in CONSENT_TYPES:
            # The platform's signals are no consent history: a stranger Meta reported
            # on is still `no_consent` (clause 3.3).
            self.last_event_id = event.event_id
            self.version += 1

    def _apply_grant(self, event: ConsentEvent) -> None:
        # A grant newer than an opt-out is a fresh opt-in (contract section 2): it
        # ends the opt-out for the purposes it names; the others stay suspended
        # until an OptedIn restores them.
        grant = Grant(
            source=event.source,
            granted_at=event.occurred_at,
            expires_at=event.expires_at,
            event_id=event.event_id,
        )
        for purpose in event.purposes or ():
            self.grants[purpose] = grant
            self.revoked.pop(purpose, None)
            self.suspended.pop(purpose, None)
            # A fresh consent is the person's own word, as after an opt-out.
            self.paused.pop(purpose, None)
        self.opted_out = False
        if event.timezone is not None:
            # The latest grant that names one tells where the person is now.
            self.timezone = event.timezone

    def _apply_revocation(self, event: ConsentEvent) -> None:
        targets = _ALL_PURPOSES if event.purposes is None else event.purposes
        for purpose in targets:
            grant = self.grants.pop(purpose, None)
            suspended = self.suspended.pop(purpose, None)
            self.paused.pop(purpose, None)
            if grant is None:
                grant = suspended
            if grant is not None:
                self.revoked[purpose] = Revocation(
                    grant=grant, revoked_at=event.occurred_at, event_id=event.event_id
                )

    def _apply_opt_out(self, event: ConsentEvent, authenticated: bool) -> None:
        # Clause 4.3: everything stops. A second opt-out keeps what the first suspended,
        # so that one later START restores the same purposes.
        self.suspended.update(self.grants)
        self.grants = {}
        self.opted_out = True
        self.opt_out_event_id = event.event_id
        self.opt_out_authenticated = authenticated
        self.opted_out_at = event.occurred_at

    def _apply_erasure_request(self, event: ConsentEvent) -> None:
        # Everything the person consented to ends, and nothing a STOP suspended can
        # come back: they asked to be forgotten. The fact of an opt-out stays, as it
        # will in the suppression entry that outlives the erasure. Only the first
        # request counts: a repeat must not move the deadline.
        self.grants, self.suspended, self.revoked, self.paused = {}, {}, {}, {}
        self.timezone = None
        if self.erasure_event_id is None:
            self.erasure_event_id = event.event_id
            self.erasure_requested_at = event.occurred_at

    def _apply_platform_stop(self, event: ConsentEvent) -> None:
        # Holds the named purposes back, granted or suspended by a STOP, and moves
        # nothing: the grants stay as the person's own events left them, so that
        # lifting the hold can never give back more than they would have had.
        stop = PlatformStop(event_id=event.event_id, stopped_at=event.occurred_at)
        for purpose in event.purposes or ():
            if purpose in self.grants or purpose in self.suspended:
                self.paused.setdefault(purpose, stop)

    def _apply_platform_resume(self) -> None:
        self.paused = {}

    def _apply_opt_in(self, moment: datetime) -> None:
        for purpose, grant in self.suspended.items():
            if not grant.expired_at(moment):
                self.grants[purpose] = grant
        self.suspended = {}
        self.opted_out = False
