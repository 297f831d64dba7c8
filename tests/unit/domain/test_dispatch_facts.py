"""The dispatcher's own facts: given the decisions it recorded, then what counts
toward the cap and which confirmations are spent; and the SQL says the same."""

from datetime import timedelta
from pathlib import Path

import pytest

from shared.contract.decisions import Decision, DispatchDecision, Reason
from shared.contract.purposes import OPT_OUT_CONFIRMATION, Purpose
from shared.dispatch.facts import (
    COUNTS_TOWARD_CAP_SQL,
    SPENDS_CONFIRMATION_SQL,
    DispatchFacts,
    counts_toward_cap,
    spends_confirmation,
)
from tests.unit.domain.builders import SUBJECT, at, request

WINDOW = timedelta(hours=24)
MIGRATION = Path(__file__).parents[3] / "deploy/migrations/dispatcher/001_decisions.sql"


def recorded(
    decision: Decision, reason: Reason, minutes: float = 0, **asked: str
) -> DispatchDecision:
    purpose = OPT_OUT_CONFIRMATION if "opt_out_event_id" in asked else Purpose.EVENT_REMINDER
    return DispatchDecision.on(request(purpose, **asked), decision, reason, at(minutes))


def facts_after(*decisions: DispatchDecision) -> DispatchFacts:
    facts = DispatchFacts(WINDOW)
    for decision in decisions:
        facts.record(decision)
    return facts


@pytest.mark.parametrize("reason", list(Reason))
@pytest.mark.parametrize("decision", list(Decision))
def test_only_a_consented_dispatch_counts_toward_the_cap(
    decision: Decision, reason: Reason
) -> None:
    expected = (decision, reason) == (Decision.DISPATCHED, Reason.CONSENTED)
    assert counts_toward_cap(decision, reason) is expected
    assert counts_toward_cap(decision.value, reason.value) is expected


@pytest.mark.parametrize("reason", list(Reason))
@pytest.mark.parametrize("decision", list(Decision))
def test_only_a_dispatched_confirmation_spends_one(decision: Decision, reason: Reason) -> None:
    expected = (decision, reason) == (Decision.DISPATCHED, Reason.OPT_OUT_CONFIRMATION)
    assert spends_confirmation(decision, reason) is expected


def test_consented_dispatches_count_within_the_rolling_window_only() -> None:
    facts = facts_after(
        recorded(Decision.DISPATCHED, Reason.CONSENTED, minutes=0),
        recorded(Decision.DISPATCHED, Reason.CONSENTED, minutes=60),
        recorded(Decision.DROPPED, Reason.FREQUENCY_CAPPED, minutes=61),
    )

    assert facts.in_window(SUBJECT, at(61)) == 2
    assert facts.in_window(SUBJECT, at(0) + WINDOW) == 1  # the window is (now - 24 h, now]
    assert facts.in_window(SUBJECT, at(60) + WINDOW) == 0


def test_a_dispatched_confirmation_spends_its_opt_out_and_a_dropped_one_does_not() -> None:
    facts = facts_after(
        recorded(Decision.DISPATCHED, Reason.OPT_OUT_CONFIRMATION, opt_out_event_id="o1"),
        recorded(Decision.DROPPED, Reason.CONFIRMATION_NOT_ALLOWED, opt_out_event_id="o2"),
    )

    assert facts.confirmed == {"o1"}
    asked = request(OPT_OUT_CONFIRMATION, opt_out_event_id="o1")
    assert facts.for_request(asked, at(1)).confirmation_already_sent
    assert facts.for_request(asked, at(1)).dispatched_in_window == 0


def test_the_partial_index_of_the_cap_is_the_predicate_the_facts_give() -> None:
    migration = " ".join(MIGRATION.read_text().split())
    assert f"WHERE {COUNTS_TOWARD_CAP_SQL};" in migration


def test_the_sql_predicates_name_the_contract_values() -> None:
    assert COUNTS_TOWARD_CAP_SQL == "decision = 'dispatched' AND reason = 'consented'"
    assert "reason = 'opt_out_confirmation'" in SPENDS_CONFIRMATION_SQL
