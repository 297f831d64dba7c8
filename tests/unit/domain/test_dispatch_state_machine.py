"""The send gate over time (hypothesis stateful): consent events and send requests
interleave for a few subjects; the machine folds each subject's history with
fold_subject, decides with decide_send, and checks the verdicts against facts it
keeps itself (who is opted out by which event, confirmations sent per opt-out,
dispatches in the frequency window)."""

from collections import Counter, defaultdict
from datetime import datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shared.consent.fold import fold_subject
from shared.consent.state import LoggedEvent, SubjectState
from shared.contract.decisions import Decision, Reason
from shared.contract.events import ConsentEvent, EventType
from shared.contract.purposes import OPT_OUT_CONFIRMATION, Purpose, permitted_purpose
from shared.dispatch.rules import FrequencyPolicy, SendFacts, Verdict, decide_send
from tests.unit.domain.builders import (
    OTHER_SUBJECT,
    SUBJECT,
    T0,
    granted,
    logged,
    opted_in,
    opted_out,
    request,
    revoked,
)

SUBJECTS = (SUBJECT, OTHER_SUBJECT)
FREQUENCY = FrequencyPolicy(limit=3, window=timedelta(hours=1))

subjects = st.sampled_from(SUBJECTS)
partitions = st.integers(0, 2)
some_purposes = st.lists(st.sampled_from(Purpose), min_size=1, max_size=5, unique=True)
requested_purposes = st.sampled_from(
    [*(p.value for p in Purpose), OPT_OUT_CONFIRMATION, OPT_OUT_CONFIRMATION, "marketing"]
)


class DispatchMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.serial = 0
        self.history: dict[str, list[LoggedEvent]] = {s: [] for s in SUBJECTS}
        self.next_offset: dict[int, int] = defaultdict(int)
        # The model's own facts, kept without the fold.
        self.opted_out: dict[str, bool] = dict.fromkeys(SUBJECTS, False)
        self.opt_outs: dict[str, list[tuple[str, datetime]]] = {s: [] for s in SUBJECTS}
        self.confirmations: Counter[str] = Counter()
        self.dispatched_at: dict[str, list[datetime]] = {s: [] for s in SUBJECTS}
        self.verdicts: dict[str, Verdict] = {}
        self.requests_sent = 0

    # ------------------------------------------------------------ the log

    def _next_id(self, kind: str) -> str:
        self.serial += 1
        return f"{kind}-{self.serial}"

    def _moment(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now

    def _append(self, subject: str, event: ConsentEvent, partition: int) -> None:
        offset = self.next_offset[partition]
        self.next_offset[partition] += 1
        self.history[subject].append(logged(event, partition, offset, log_time=self.now))

    def _state(self, subject: str) -> SubjectState | None:
        history = self.history[subject]
        return fold_subject(subject, history) if history else None

    # ------------------------------------------------------------ rules: time and events

    @rule(minutes=st.integers(1, 90))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule(
        subject=subjects,
        purposes=some_purposes,
        ttl=st.none() | st.integers(1, 120),
        partition=partitions,
    )
    def grant(self, subject: str, purposes: list[Purpose], ttl: int | None, partition: int) -> None:
        at = self._moment()
        expires_at = None if ttl is None else at + timedelta(minutes=ttl)
        event = granted(
            *purposes,
            event_id=self._next_id("g"),
            occurred_at=at,
            expires_at=expires_at,
            subject=subject,
        )
        self._append(subject, event, partition)
        self.opted_out[subject] = False

    @rule(subject=subjects, purposes=st.none() | some_purposes, partition=partitions)
    def revoke(self, subject: str, purposes: list[Purpose] | None, partition: int) -> None:
        event = revoked(
            *(purposes or ()),
            event_id=self._next_id("r"),
            occurred_at=self._moment(),
            subject=subject,
        )
        self._append(subject, event, partition)

    @rule(subject=subjects, partition=partitions)
    def opt_out(self, subject: str, partition: int) -> None:
        at = self._moment()
        event = opted_out(event_id=self._next_id("stop"), occurred_at=at, subject=subject)
        self._append(subject, event, partition)
        self.opted_out[subject] = True
        self.opt_outs[subject].append((event.event_id, at))

    @rule(subject=subjects, partition=partitions)
    def opt_in(self, subject: str, partition: int) -> None:
        event = opted_in(
            event_id=self._next_id("start"), occurred_at=self._moment(), subject=subject
        )
        self._append(subject, event, partition)
        self.opted_out[subject] = False

    @precondition(lambda self: any(self.opt_outs.values()))
    @rule(
        data=st.data(),
        kind=st.sampled_from([EventType.OPTED_IN, EventType.CONSENT_GRANTED]),
        earlier=st.integers(1, 3600),
        partition=partitions,
    )
    def late_older_opt_in_arrives(
        self, data: st.DataObject, kind: EventType, earlier: int, partition: int
    ) -> None:
        """Happened before the subject's latest opt-out, reaches the log only now."""
        subject = data.draw(st.sampled_from([s for s in SUBJECTS if self.opt_outs[s]]))
        _, latest_opt_out_at = self.opt_outs[subject][-1]
        at = latest_opt_out_at - timedelta(seconds=earlier)
        event = (
            opted_in(event_id=self._next_id("late-start"), occurred_at=at, subject=subject)
            if kind is EventType.OPTED_IN
            else granted(
                *data.draw(some_purposes),
                event_id=self._next_id("late-g"),
                occurred_at=at,
                subject=subject,
            )
        )
        self._append(subject, event, partition)
        # The model's facts do not change: the latest opt-out is still the latest.

    # ------------------------------------------------------------ rule: a send request

    @rule(
        subject=subjects,
        purpose=requested_purposes,
        which=st.sampled_from(["current", "current", "stale", "missing", "foreign"]),
    )
    def send(self, subject: str, purpose: str, which: str) -> None:
        self._send(subject, purpose, which)

    @rule(subject=subjects, purpose=st.sampled_from(Purpose), count=st.integers(2, 6))
    def send_a_burst(self, subject: str, purpose: Purpose, count: int) -> None:
        """Several reminders at once: what the frequency cap is for."""
        for _ in range(count):
            self._send(subject, purpose.value, "missing")

    def _send(self, subject: str, purpose: str, which: str) -> None:
        opt_out_event_id = self._opt_out_event_id(subject, purpose, which)
        send = request(
            purpose,
            request_id=self._next_id("req"),
            recipient=subject,
            opt_out_event_id=opt_out_event_id,
        )
        state = self._state(subject)
        facts = SendFacts(
            confirmation_already_sent=bool(
                opt_out_event_id and self.confirmations[opt_out_event_id]
            ),
            dispatched_in_window=self._dispatched_in_window(subject),
        )

        verdict = decide_send(state, send, facts, self.now, FREQUENCY)

        self.requests_sent += 1
        assert send.request_id not in self.verdicts
        self.verdicts[send.request_id] = verdict
        if purpose == OPT_OUT_CONFIRMATION:
            self._check_confirmation(subject, opt_out_event_id, verdict)
        else:
            self._check_message(subject, purpose, state, facts, verdict)

    def _opt_out_event_id(self, subject: str, purpose: str, which: str) -> str | None:
        if purpose != OPT_OUT_CONFIRMATION or which == "missing":
            return None
        ids = [event_id for event_id, _ in self.opt_outs[subject]]
        if which == "current" and ids:
            return ids[-1]
        if which == "stale" and len(ids) > 1:
            return ids[-2]
        other = next(s for s in SUBJECTS if s != subject)
        return self.opt_outs[other][-1][0] if self.opt_outs[other] else "never-opted-out"

    def _dispatched_in_window(self, subject: str) -> int:
        since = self.now - FREQUENCY.window
        return sum(1 for at in self.dispatched_at[subject] if at > since)

    def _check_confirmation(
        self, subject: str, opt_out_event_id: str | None, verdict: Verdict
    ) -> None:
        current = self.opt_outs[subject][-1][0] if self.opt_outs[subject] else None
        allowed = (
            self.opted_out[subject]
            and opt_out_event_id is not None
            and opt_out_event_id == current
            and self.confirmations[opt_out_event_id] == 0
        )
        if allowed:
            assert verdict.decision is Decision.DISPATCHED, verdict
            assert verdict.reason is Reason.OPT_OUT_CONFIRMATION
            assert opt_out_event_id is not None
            self.confirmations[opt_out_event_id] += 1
        else:
            assert verdict.decision is Decision.DROPPED, verdict
            assert verdict.reason is Reason.CONFIRMATION_NOT_ALLOWED

    def _check_message(
        self,
        subject: str,
        purpose: str,
        state: SubjectState | None,
        facts: SendFacts,
        verdict: Verdict,
    ) -> None:
        permitted = permitted_purpose(purpose)
        if permitted is None:
            assert verdict.reason is Reason.PURPOSE_NOT_PERMITTED, verdict
            return
        if state is None:
            assert verdict.reason is Reason.NO_CONSENT, verdict
            return
        if self.opted_out[subject]:
            assert verdict.reason is Reason.OPTED_OUT, verdict
            return
        if verdict.decision is not Decision.DISPATCHED:
            assert verdict.reason in {
                Reason.PURPOSE_NOT_CONSENTED,
                Reason.CONSENT_EXPIRED,
                Reason.FREQUENCY_CAPPED,
            }, verdict
            return
        assert verdict.reason is Reason.CONSENTED
        grant = state.grants[permitted]
        assert not grant.expired_at(self.now)
        assert verdict.consent_event_id == grant.event_id
        assert self._granted_in_history(subject, grant.event_id, permitted)
        assert facts.dispatched_in_window < FREQUENCY.limit
        self.dispatched_at[subject].append(self.now)

    def _granted_in_history(self, subject: str, event_id: str, purpose: Purpose) -> bool:
        return any(
            r.event.event_id == event_id
            and r.event.type is EventType.CONSENT_GRANTED
            and purpose in (r.event.purposes or ())
            for r in self.history[subject]
        )

    # ------------------------------------------------------------ invariants

    @invariant()
    def the_fold_agrees_with_the_model_on_who_is_opted_out(self) -> None:
        for subject in SUBJECTS:
            state = self._state(subject)
            if state is None:
                continue
            assert state.opted_out == self.opted_out[subject]
            if state.opted_out:
                assert state.grants == {}
                assert state.opt_out_event_id == self.opt_outs[subject][-1][0]

    @invariant()
    def at_most_one_confirmation_per_opt_out(self) -> None:
        assert all(count == 1 for count in self.confirmations.values())

    @invariant()
    def every_request_has_exactly_one_verdict(self) -> None:
        assert len(self.verdicts) == self.requests_sent

    @invariant()
    def no_window_holds_more_dispatches_than_the_limit(self) -> None:
        for times in self.dispatched_at.values():
            for i, start in enumerate(times):
                in_window = [t for t in times[i:] if t < start + FREQUENCY.window]
                assert len(in_window) <= FREQUENCY.limit


DispatchMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_dispatch_state_machine = DispatchMachine.TestCase
