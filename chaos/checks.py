"""The invariants, judged from the recorded history and what the outside saw: pure
functions, no I/O (tests feed them a history of their own)."""

import math
from collections import Counter
from collections.abc import Callable

from chaos.history import STOP, History, Reply, last_acked_reply, next_start
from chaos.latency import (
    percentile,
    stop_to_enforced_during_faults,
    stop_to_enforced_outside_faults,
)
from chaos.observed import CommandResult, LoggedDecision, Observed
from chaos.verdicts import Verdict
from shared.phone import mask_phone

NO_OPT_OUT_LOST = "no opt-out lost"
NOTHING_SENT_AFTER_OPT_OUT = "nothing sent after an opt-out"
ONE_DECISION_PER_REQUEST = "one decision per request"
AT_MOST_ONE_SEND = "at most one send per request"
PROJECTION_EQUALS_REBUILD = "projection equals a rebuild"
AUDIT_CLEAN = "audit clean"
POISON_DEAD_LETTERED = "poison dead-lettered"
POISON_REQUESTS_INVALID = "poison requests decided invalid_request"
DRAINED = "drained"
DECIDES_AGAIN = "decides again after every fault"

INVARIANTS = (
    NO_OPT_OUT_LOST,
    NOTHING_SENT_AFTER_OPT_OUT,
    ONE_DECISION_PER_REQUEST,
    AT_MOST_ONE_SEND,
    PROJECTION_EQUALS_REBUILD,
    AUDIT_CLEAN,
    POISON_DEAD_LETTERED,
    POISON_REQUESTS_INVALID,
    DRAINED,
    DECIDES_AGAIN,
)


def judge(history: History, observed: Observed) -> list[Verdict]:
    checks: list[Callable[[History, Observed], Verdict]] = [
        no_opt_out_lost,
        nothing_sent_after_opt_out,
        one_decision_per_request,
        at_most_one_send,
        projection_equals_rebuild,
        audit_clean,
        poison_dead_lettered,
        poison_requests_invalid,
        drained,
        decides_again,
        sends_before_the_opt_out_was_logged,
        stop_to_enforced_during_faults,
        stop_to_enforced_outside_faults,
    ]
    return [check(history, observed) for check in checks]


def no_opt_out_lost(history: History, observed: Observed) -> Verdict:
    stops = history.acked_replies(STOP)
    unlogged = [
        s
        for s in stops
        if (e := observed.reply_events.get(s.message_id)) is None or e.type != "OptedOut"
    ]
    subjects = {r.subject for r in history.replies}
    last_stop = [
        s
        for s in sorted(subjects)
        if (r := last_acked_reply(history.replies, s)) and r.kind == STOP
    ]
    not_out = [s for s in last_stop if observed.consent_status.get(s) != "opted_out"]
    return Verdict(
        NO_OPT_OUT_LOST,
        f"{len(stops)} STOPs acknowledged (200), {len(stops) - len(unlogged)} OptedOut in "
        f"the log; {len(last_stop) - len(not_out)} of {len(last_stop)} subjects opted_out "
        f"by the consent API; lost {len(unlogged) + len(not_out)}",
        not unlogged and not not_out,
        [f"no OptedOut for {s.message_id} ({mask_phone(s.subject)})" for s in unlogged]
        + [f"{mask_phone(s)} is {observed.consent_status.get(s, 'unread')}" for s in not_out],
    )


def _sends_after(
    history: History, observed: Observed
) -> tuple[list[tuple[Reply, LoggedDecision]], list[tuple[Reply, LoggedDecision]]]:
    """Dispatches to a STOPped subject after its 200 and before its next acknowledged
    START, other than its one confirmation: (after its OptedOut was visible on the
    log, between the 200 and that)."""
    dispatched = observed.dispatched_to()
    after: list[tuple[Reply, LoggedDecision]] = []
    before: list[tuple[Reply, LoggedDecision]] = []
    for stop in history.acked_replies(STOP):
        assert stop.acked_at is not None
        event = observed.reply_events.get(stop.message_id)
        start = next_start(history.replies, stop)
        closes = start.acked_at if start is not None and start.acked_at else math.inf
        opted_in = observed.reply_events.get(start.message_id) if start is not None else None
        logged_at = event.visible_at if event is not None else stop.acked_at
        confirmed = False
        for d in sorted(dispatched.get(stop.subject, []), key=lambda d: d.decided_at):
            if not stop.acked_at < d.decided_at < closes:
                continue
            if opted_in is not None and d.saw(opted_in.partition, opted_in.offset):
                # decided_at is read before the fence: a dispatcher paused between
                # the two decided on a state that already held the user's START.
                continue
            its_confirmation = (
                event is not None
                and d.reason == "opt_out_confirmation"
                and d.opt_out_event_id == event.event_id
            )
            if its_confirmation and not confirmed:
                confirmed = True
            elif d.decided_at > logged_at:
                after.append((stop, d))
            else:
                before.append((stop, d))
    return after, before


def _send_example(stop: Reply, d: LoggedDecision) -> str:
    assert stop.acked_at is not None
    return (
        f"{d.request_id} ({d.purpose}, {d.reason}) to {mask_phone(stop.subject)} decided "
        f"{d.decided_at - stop.acked_at:.3f}s after the 200 of {stop.message_id}"
    )


def nothing_sent_after_opt_out(history: History, observed: Observed) -> Verdict:
    after, _ = _sends_after(history, observed)
    return Verdict(
        NOTHING_SENT_AFTER_OPT_OUT,
        f"{len(after)} dispatched after an acknowledged opt-out was on the log "
        f"(before a later START; its one confirmation excepted)",
        not after,
        [_send_example(stop, d) for stop, d in after],
    )


def sends_before_the_opt_out_was_logged(history: History, observed: Observed) -> Verdict:
    _, before = _sends_after(history, observed)
    return Verdict(
        "sends between a STOP's 200 and its OptedOut on the log",
        f"{len(before)} (the contract's guarantee starts at the OptedOut's acknowledgement)",
        None,
        [_send_example(stop, d) for stop, d in before],
    )


def one_decision_per_request(history: History, observed: Observed) -> Verdict:
    by_id = observed.decisions_by_request()
    acked = history.acked_requests()
    undecided = [r.request_id for r in acked if r.request_id not in by_id]
    doubled = sorted(rid for rid, ds in by_id.items() if len(ds) > 1)
    unlogged = sorted(observed.requests_in_log - set(by_id))
    resent = sum(1 for r in acked if r.sends > 1)
    return Verdict(
        ONE_DECISION_PER_REQUEST,
        f"{len(acked)} request_ids acknowledged ({resent} sent more than once), "
        f"{len(observed.requests_in_log)} on the log: {len(undecided) + len(unlogged)} "
        f"without a decision, {len(doubled)} with more than one",
        not undecided and not doubled and not unlogged,
        [f"{rid}: no decision" for rid in undecided + unlogged]
        + [f"{rid}: {len(by_id[rid])} decisions" for rid in doubled],
    )


def at_most_one_send(history: History, observed: Observed) -> Verdict:
    doubled = sorted(rid for rid, n in observed.outbound.items() if n > 1)
    dispatched = {d.request_id for d in observed.decisions if d.decision == "dispatched"}
    undecided = sorted(set(observed.outbound) - dispatched)
    return Verdict(
        AT_MOST_ONE_SEND,
        f"{sum(observed.outbound.values())} records on messages.outbound.v1 for "
        f"{len(observed.outbound)} request_ids: {len(doubled)} sent twice or more, "
        f"{len(undecided)} without a dispatched decision",
        not doubled and not undecided,
        [f"{rid}: {observed.outbound[rid]} records" for rid in doubled]
        + [f"{rid}: sent without a dispatched decision" for rid in undecided],
    )


def projection_equals_rebuild(history: History, observed: Observed) -> Verdict:
    return _exited_0(PROJECTION_EQUALS_REBUILD, "rebuild --verify", observed.rebuild)


def audit_clean(history: History, observed: Observed) -> Verdict:
    return _exited_0(AUDIT_CLEAN, "python -m services.audit", observed.audit)


def _exited_0(name: str, command: str, result: CommandResult | None) -> Verdict:
    """Held when `command` ran and exited 0; else the last lines it printed."""
    return Verdict(
        name,
        f"{command} exit {result.exit_code}" if result else f"{command} not run",
        result is not None and result.exit_code == 0,
        result.tail.splitlines()[-5:] if result and result.exit_code else [],
    )


def poison_dead_lettered(history: History, observed: Observed) -> Verdict:
    reasons = observed.dead_letter_reasons()
    found = Counter(
        str(reasons[key])
        for p in history.poison
        if (key := (p.topic, p.partition, p.offset)) in reasons and reasons[key]
    )
    missing = [p for p in history.poison if not reasons.get((p.topic, p.partition, p.offset))]
    shown = ", ".join(f"{reason} {n}" for reason, n in sorted(found.items()))
    return Verdict(
        POISON_DEAD_LETTERED,
        f"{sum(found.values())} of {len(history.poison)} poison records in <topic>.dlq "
        f"with error.reason ({shown or 'none'})",
        not missing,
        [f"{p.name} at {p.topic}:{p.partition}:{p.offset} not dead-lettered" for p in missing],
    )


def poison_requests_invalid(history: History, observed: Observed) -> Verdict:
    by_id = observed.decisions_by_request()
    poisoned = [p for p in history.poison if p.request_id is not None]
    wrong = []
    for p in poisoned:
        got = [d.reason for d in by_id.get(p.request_id or "", [])]
        if got != ["invalid_request"]:
            wrong.append(f"{p.name} ({p.request_id}): {', '.join(got) or 'no decision'}")
    return Verdict(
        POISON_REQUESTS_INVALID,
        f"{len(poisoned) - len(wrong)} of {len(poisoned)} poison requests with a request_id "
        f"decided once as invalid_request",
        not wrong,
        wrong,
    )


def drained(history: History, observed: Observed) -> Verdict:
    seconds = observed.drain_seconds
    return Verdict(
        DRAINED,
        f"every request decided and every reply logged {seconds:.1f}s after the traffic stopped"
        if seconds is not None
        else f"NOT within {observed.drain_timeout:.0f}s",
        seconds is not None,
    )


def decides_again(history: History, observed: Observed) -> Verdict:
    recoveries = [f.recovery_seconds for f in history.faults]
    done = sorted(r for r in recoveries if r is not None)
    stuck = [f for f in history.faults if f.recovery_seconds is None]
    figures = (
        f": p50 {percentile(done, 50):.1f}s, max {done[-1]:.1f}s from the heal" if done else ""
    )
    return Verdict(
        DECIDES_AGAIN,
        f"{len(done)} of {len(history.faults)} faults followed by a decision{figures}",
        bool(history.faults) and not stuck,
        [f"{f.kind} {f.target}: no decision after the heal {f.note}".strip() for f in stuck],
    )
