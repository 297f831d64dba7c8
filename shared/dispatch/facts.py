"""Folds the dispatcher's own facts from the decisions it recorded: how many
consented dispatches each recipient had in the rolling window (clause 6.1) and
which opt-outs were already confirmed (clause 4.3).

The one place that says which decisions count: the gate folds its batch
through it, the audit its whole history, and the dispatcher's SQL takes its
predicates from here."""

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Final, Protocol

from shared.contract.decisions import Decision, Reason
from shared.contract.requests import SendRequest
from shared.dispatch.rules import SendFacts

# Literal SQL, not parameters: the planner matches a partial index's predicate
# (deploy/migrations/dispatcher/001_decisions.sql) only against constants.
COUNTS_TOWARD_CAP_SQL: Final = (
    f"decision = '{Decision.DISPATCHED.value}' AND reason = '{Reason.CONSENTED.value}'"
)
SPENDS_CONFIRMATION_SQL: Final = (
    f"decision = '{Decision.DISPATCHED.value}' AND reason = '{Reason.OPT_OUT_CONFIRMATION.value}'"
    " AND opt_out_event_id IS NOT NULL"
)


class RecordedDecision(Protocol):
    """Describes a decision as the dispatcher recorded it: the contract model or a stored row."""

    @property
    def decision(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def recipient(self) -> str | None: ...
    @property
    def opt_out_event_id(self) -> str | None: ...
    @property
    def decided_at(self) -> datetime: ...


def counts_toward_cap(decision: str, reason: str) -> bool:
    """Tells whether a decision counts toward its recipient's frequency cap."""
    return decision == Decision.DISPATCHED and reason == Reason.CONSENTED


def spends_confirmation(decision: str, reason: str) -> bool:
    """Tells whether a decision uses up the one confirmation of the opt-out it names."""
    return decision == Decision.DISPATCHED and reason == Reason.OPT_OUT_CONFIRMATION


class DispatchFacts:
    """Holds the facts as of the decisions recorded so far, recorded in decided_at order."""

    __slots__ = ("_consented", "confirmed", "window")

    def __init__(
        self,
        window: timedelta,
        consented: Mapping[str, Iterable[datetime]] | None = None,
        confirmed: Iterable[str] = (),
    ) -> None:
        self.window = window
        self._consented: dict[str, deque[datetime]] = defaultdict(deque)
        for recipient, times in (consented or {}).items():
            self._consented[recipient].extend(sorted(times))
        self.confirmed: set[str] = set(confirmed)

    def copy(self) -> "DispatchFacts":
        return DispatchFacts(self.window, self._consented, self.confirmed)

    def for_request(
        self, request: SendRequest, now: datetime, identifiers: Iterable[str] = ()
    ) -> SendFacts:
        """`identifiers`: all of the recipient's person's (the state's), when they have
        several: clause 6.1 limits what a person receives, by whichever address."""
        counted = set(identifiers) | {request.recipient}
        return SendFacts(
            confirmation_already_sent=request.opt_out_event_id in self.confirmed,
            dispatched_in_window=sum(self.in_window(i, now) for i in counted),
        )

    def in_window(self, recipient: str, now: datetime) -> int:
        # The window is (now - window, now]. Recorded in decided_at order, so the
        # expired ones are always at the left.
        sent = self._consented.get(recipient)
        if not sent:
            return 0
        cutoff = now - self.window
        while sent and sent[0] <= cutoff:
            sent.popleft()
        return len(sent)

    def record(self, decision: RecordedDecision) -> None:
        recipient, opt_out = decision.recipient, decision.opt_out_event_id
        if counts_toward_cap(decision.decision, decision.reason) and recipient:
            self._consented[recipient].append(decision.decided_at)
        elif opt_out and spends_confirmation(decision.decision, decision.reason):
            self.confirmed.add(opt_out)
