"""Gives the audit's checks one way to cite a recorded decision in a finding: its
verdict as text (decision/reason) and its place in the log. Shared by the request checks
and the opt-out checks."""

from services.audit.findings import DecisionRef
from services.audit.history import LoggedDecision
from shared.contract.decisions import Decision, Reason


def verdict_text(decision: Decision, reason: Reason) -> str:
    return f"{decision.value}/{reason.value}"


def decision_ref(logged: LoggedDecision) -> DecisionRef:
    return DecisionRef.of(logged.decision, logged.partition, logged.offset)
