"""The chaos run's invariants over a recorded history, without a stack: given what
was sent and acknowledged, when the outside saw this, then each breach is named."""

from collections import Counter
from dataclasses import replace

import pytest

from chaos.checks import (
    AT_MOST_ONE_SEND,
    AUDIT_CLEAN,
    DECIDES_AGAIN,
    DRAINED,
    INVARIANTS,
    NO_OPT_OUT_LOST,
    NOTHING_SENT_AFTER_OPT_OUT,
    ONE_DECISION_PER_REQUEST,
    POISON_DEAD_LETTERED,
    POISON_REQUESTS_INVALID,
    PROJECTION_EQUALS_REBUILD,
    judge,
)
from chaos.history import (
    START,
    STOP,
    Fault,
    History,
    PoisonRecord,
    Reply,
    RequestKind,
    SentRequest,
)
from chaos.latency import percentile
from chaos.observed import CommandResult, DeadLetter, LoggedDecision, Observed, ReplyEvent
from chaos.report import render
from chaos.verdicts import Verdict

T0 = 1_800_000_000.0
ALICE, BOB = "+79161234567", "+79167654321"
OPT_OUT_EVENT = "ev-alice-out"


def request(
    request_id: str, recipient: str, at: float, kind: RequestKind = RequestKind.TRAFFIC
) -> SentRequest:
    return SentRequest(request_id, recipient, "event_reminder", at, kind, acked_at=at, sends=1)


def decided(
    request_id: str,
    recipient: str,
    at: float,
    reason: str = "consented",
    opt_out_event_id: str | None = None,
) -> LoggedDecision:
    dispatched = reason in ("consented", "opt_out_confirmation")
    return LoggedDecision(
        request_id,
        recipient,
        "opt_out_confirmation" if reason == "opt_out_confirmation" else "event_reminder",
        "dispatched" if dispatched else "dropped",
        reason,
        at,
        opt_out_event_id,
    )


def given() -> tuple[History, Observed]:
    """Alice consents, gets a reminder, says STOP (200 at +10 s, OptedOut visible at
    +10.2 s), gets her one confirmation, and the next reminder is dropped. A poison
    request is dead-lettered and decided invalid_request. One fault, healed."""
    history = History(seed=1, started_at=T0, ended_at=T0 + 120)
    for sent in (
        request("r-before", ALICE, T0 + 5),
        request("r-after", ALICE, T0 + 20),
        request("probe-1", BOB, T0 + 61, RequestKind.PROBE),
        request("poison-1", BOB, T0 + 30, RequestKind.POISON),
    ):
        history.requests[sent.request_id] = sent
    history.replies.append(
        Reply("wamid.stop", ALICE, "СТОП", STOP, T0 + 9.9, T0 + 10, ["200"], T0 + 10.3)
    )
    history.poison.append(
        PoisonRecord("request_message_deep_3000", "messages.requests.v1", 1, 7, T0 + 30, "poison-1")
    )
    history.faults.append(
        Fault("kill9", "dispatcher", T0 + 50, T0 + 52, T0 + 55, "probe-1", T0 + 62)
    )
    confirmation = decided("conf-1", ALICE, T0 + 10.4, "opt_out_confirmation", OPT_OUT_EVENT)
    decisions = [
        decided("r-before", ALICE, T0 + 5.1),
        confirmation,
        decided("r-after", ALICE, T0 + 20.1, "opted_out"),
        decided("probe-1", BOB, T0 + 61.5),
        decided("poison-1", BOB, T0 + 30.2, "invalid_request"),
    ]
    observed = Observed(
        decisions=decisions,
        outbound=Counter({"r-before": 1, "conf-1": 1, "probe-1": 1}),
        reply_events={
            "wamid.stop": ReplyEvent(
                "wamid.stop", "OptedOut", ALICE, OPT_OUT_EVENT, T0 + 10.1, T0 + 10.2
            )
        },
        requests_in_log={"r-before", "r-after", "probe-1", "poison-1", "conf-1"},
        dead_letters=[
            DeadLetter("messages.requests.v1.dlq", ("messages.requests.v1", 1, 7), "too_deep")
        ],
        consent_status={ALICE: "opted_out"},
        rebuild=CommandResult("rebuild --verify", 0, ""),
        audit=CommandResult("audit", 0, ""),
        drain_seconds=2.5,
        drain_timeout=240,
    )
    return history, observed


def verdict(history: History, observed: Observed, name: str) -> Verdict:
    (found,) = [v for v in judge(history, observed) if v.name == name]
    return found


def test_a_clean_history_holds_every_invariant() -> None:
    history, observed = given()

    verdicts = judge(history, observed)

    assert [v.name for v in verdicts if v.held is not None] == list(INVARIANTS)
    assert [v.name for v in verdicts if v.held is False] == []


def test_a_stop_whose_opted_out_never_reached_the_log_is_a_lost_opt_out() -> None:
    history, observed = given()
    observed.reply_events.clear()

    lost = verdict(history, observed, NO_OPT_OUT_LOST)

    assert lost.held is False
    assert "lost 1" in lost.measured
    assert lost.examples == ["no OptedOut for wamid.stop (+7916*****67)"]


def test_a_subject_not_opted_out_after_its_last_stop_is_a_lost_opt_out() -> None:
    history, observed = given()
    observed.consent_status[ALICE] = "opted_in"

    lost = verdict(history, observed, NO_OPT_OUT_LOST)

    assert lost.held is False
    assert "0 of 1 subjects opted_out" in lost.measured


def test_a_subject_who_said_start_after_stop_need_not_be_opted_out() -> None:
    history, observed = given()
    history.replies.append(Reply("wamid.start", ALICE, "START", START, T0 + 40, T0 + 40.1))
    observed.consent_status[ALICE] = "opted_in"

    assert verdict(history, observed, NO_OPT_OUT_LOST).held is True


def test_a_request_decided_twice_is_reported() -> None:
    history, observed = given()
    observed.decisions.append(decided("r-after", ALICE, T0 + 25, "opted_out"))

    twice = verdict(history, observed, ONE_DECISION_PER_REQUEST)

    assert twice.held is False
    assert twice.examples == ["r-after: 2 decisions"]


def test_an_acknowledged_request_without_a_decision_is_reported() -> None:
    history, observed = given()
    observed.decisions = [d for d in observed.decisions if d.request_id != "probe-1"]

    missing = verdict(history, observed, ONE_DECISION_PER_REQUEST)

    assert missing.held is False
    assert "probe-1: no decision" in missing.examples


def test_a_send_after_the_opt_out_is_reported() -> None:
    history, observed = given()
    observed.decisions.append(decided("r-late", ALICE, T0 + 15))

    sent = verdict(history, observed, NOTHING_SENT_AFTER_OPT_OUT)

    assert sent.held is False
    assert sent.examples == [
        "r-late (event_reminder, consented) to +7916*****67 decided 5.000s after the 200 "
        "of wamid.stop"
    ]


def test_a_second_confirmation_of_one_opt_out_is_a_send_after_it() -> None:
    history, observed = given()
    observed.decisions.append(
        decided("conf-2", ALICE, T0 + 11, "opt_out_confirmation", OPT_OUT_EVENT)
    )

    assert verdict(history, observed, NOTHING_SENT_AFTER_OPT_OUT).held is False


def test_a_send_before_the_opted_out_reached_the_log_is_a_figure_not_a_breach() -> None:
    history, observed = given()
    observed.decisions.append(decided("r-racing", ALICE, T0 + 10.15))

    verdicts = {v.name: v for v in judge(history, observed)}

    assert verdicts[NOTHING_SENT_AFTER_OPT_OUT].held is True
    window = verdicts["sends between a STOP's 200 and its OptedOut on the log"]
    assert (window.held, window.measured.split()[0]) == (None, "1")


def test_a_send_after_a_later_start_is_allowed() -> None:
    history, observed = given()
    history.replies.append(Reply("wamid.start", ALICE, "START", START, T0 + 40, T0 + 40.1))
    observed.decisions.append(decided("r-welcome-back", ALICE, T0 + 41))

    assert verdict(history, observed, NOTHING_SENT_AFTER_OPT_OUT).held is True


def test_a_send_whose_fence_holds_the_later_start_is_allowed() -> None:
    """Found by make test: the dispatcher took decided_at, was SIGSTOPped for 15 s,
    and then read its fence and the state, which held the user's START by then."""
    history, observed = given()
    history.replies.append(Reply("wamid.start", ALICE, "START", START, T0 + 40, T0 + 40.1))
    observed.reply_events["wamid.start"] = ReplyEvent(
        "wamid.start", "OptedIn", ALICE, "ev-alice-in", T0 + 40.1, T0 + 40.2, 2, 30
    )
    paused = replace(decided("r-paused", ALICE, T0 + 15), fence={"0": 12, "2": 31})
    blind = replace(decided("r-blind", ALICE, T0 + 16), fence={"0": 12, "2": 30})
    observed.decisions.append(paused)
    assert verdict(history, observed, NOTHING_SENT_AFTER_OPT_OUT).held is True
    observed.decisions.append(blind)
    assert verdict(history, observed, NOTHING_SENT_AFTER_OPT_OUT).held is False


def test_a_request_sent_twice_on_outbound_is_reported() -> None:
    history, observed = given()
    observed.outbound["r-before"] += 1

    twice = verdict(history, observed, AT_MOST_ONE_SEND)

    assert (twice.held, twice.examples) == (False, ["r-before: 2 records"])


def test_a_poison_record_missing_from_the_dlq_is_reported() -> None:
    history, observed = given()
    observed.dead_letters = [replace(observed.dead_letters[0], reason=None)]

    poison = verdict(history, observed, POISON_DEAD_LETTERED)

    assert poison.held is False
    assert poison.examples == [
        "request_message_deep_3000 at messages.requests.v1:1:7 not dead-lettered"
    ]


def test_a_poison_request_decided_otherwise_than_invalid_request_is_reported() -> None:
    history, observed = given()
    observed.decisions = [
        replace(d, reason="consented", decision="dispatched") if d.request_id == "poison-1" else d
        for d in observed.decisions
    ]

    assert verdict(history, observed, POISON_REQUESTS_INVALID).held is False


def test_a_fault_the_system_never_decided_after_is_reported() -> None:
    history, observed = given()
    history.faults[0].decided_again_at = None

    stuck = verdict(history, observed, DECIDES_AGAIN)

    assert stuck.held is False
    assert stuck.examples == ["kill9 dispatcher: no decision after the heal"]


@pytest.mark.parametrize("name", [PROJECTION_EQUALS_REBUILD, AUDIT_CLEAN])
def test_a_command_exiting_non_zero_fails_its_invariant(name: str) -> None:
    history, observed = given()
    observed.rebuild = CommandResult("rebuild --verify", 1, "1 subjects differ")
    observed.audit = CommandResult("audit", 1, "violation")

    assert verdict(history, observed, name).held is False


def test_no_drain_within_the_bound_fails_the_run() -> None:
    history, observed = given()
    observed.drain_seconds = None

    assert verdict(history, observed, DRAINED).held is False


def test_stop_to_enforced_latency_is_measured_apart_for_stops_during_faults() -> None:
    history, observed = given()
    history.replies.append(
        Reply("wamid.2", BOB, "STOP", STOP, T0 + 51, T0 + 53, ["503", "200"], T0 + 54.5)
    )

    verdicts = {v.name: v for v in judge(history, observed)}

    assert verdicts["STOP-to-enforced during faults"].measured.startswith("p50 1.500s")
    assert verdicts["STOP-to-enforced outside faults"].measured.startswith("p50 0.300s")


def test_percentile_is_a_measured_value_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50.0,
        99.0,
        100.0,
    )
    assert percentile([0.2], 99) == 0.2


def test_the_report_names_every_invariant_with_its_verdict() -> None:
    history, observed = given()
    observed.outbound["r-before"] += 1

    text = render(history, observed, judge(history, observed))

    for name in INVARIANTS:
        word = "FAILED" if name == AT_MOST_ONE_SEND else "held"
        assert any(line.startswith(name) and f"| {word}" in line for line in text.splitlines())
    assert text.splitlines()[-1] == f"FAILED: {AT_MOST_ONE_SEND}"


def test_a_stop_never_seen_enforced_is_counted_unless_a_start_came_first() -> None:
    history, observed = given()
    history.replies.append(Reply("wamid.3", BOB, "STOP", STOP, T0 + 70, T0 + 70.1))

    outside = {v.name: v for v in judge(history, observed)}["STOP-to-enforced outside faults"]
    assert outside.measured.endswith("; 1 never seen enforced")

    history.replies.append(Reply("wamid.4", BOB, "START", START, T0 + 80, T0 + 80.1))
    outside = {v.name: v for v in judge(history, observed)}["STOP-to-enforced outside faults"]
    assert "never seen enforced" not in outside.measured
