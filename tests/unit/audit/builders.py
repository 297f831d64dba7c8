"""A recorded history, built the way the system writes it, for the audit's pure tests.

`RecordedLog.decide` decides a request as the dispatcher does (fence = the
consent log's end offsets now, state = the fold below it, facts from the
decisions recorded so far); `RecordedLog.record` writes any decision at all:
that is how a test plants a wrong one."""

from collections import Counter
from datetime import datetime, timedelta

from services.audit.history import AuditPolicy, History, LoggedDecision, LoggedRequest
from services.audit.recompute import AuditResult, audit
from shared.consent.fold import fold_subject
from shared.consent.state import LoggedEvent
from shared.contract.decisions import Decision, DispatchDecision, Reason
from shared.contract.events import ConsentEvent
from shared.contract.requests import SendRequest
from shared.dispatch.facts import DispatchFacts
from shared.dispatch.rules import FrequencyPolicy, decide_send
from tests.unit.domain.builders import T0, at

__all__ = ["T0", "RecordedLog", "at"]


class RecordedLog:
    def __init__(self, frequency: FrequencyPolicy | None = None, partitions: int = 1) -> None:
        self.history = History()
        self.frequency = frequency or FrequencyPolicy()
        self._next = Counter[tuple[str, int]]()
        self._facts = DispatchFacts(self.frequency.window)
        self.partitions = partitions

    def _offset(self, topic: str, partition: int) -> int:
        offset = self._next[(topic, partition)]
        self._next[(topic, partition)] += 1
        return offset

    def fence(self) -> dict[str, int]:
        return {str(p): self._next[("events", p)] for p in range(self.partitions)}

    def append(self, event: ConsentEvent, when: datetime, partition: int = 0) -> LoggedEvent:
        offset = self._offset("events", partition)
        logged = LoggedEvent.from_log(event, when, partition, offset)
        self.history.events.append(logged)
        return logged

    def ask(self, request: SendRequest, when: datetime) -> SendRequest:
        offset = self._offset("requests", 0)
        self.history.requests.append(
            LoggedRequest(
                request.request_id,
                request.recipient,
                request.purpose,
                request,
                None,
                when,
                0,
                offset,
            )
        )
        return request

    def decide(self, request: SendRequest, when: datetime) -> DispatchDecision:
        """As the dispatcher: everything appended so far is below the fence."""
        visible = [e for e in self.history.events if e.event.subject == request.recipient]
        state = fold_subject(request.recipient, visible) if visible else None
        facts = self._facts.for_request(request, when)
        verdict = decide_send(state, request, facts, when, self.frequency)
        return self.record(
            request,
            verdict.decision,
            verdict.reason,
            when,
            consent_event_id=verdict.consent_event_id,
        )

    def record(
        self,
        request: SendRequest,
        decision: Decision,
        reason: Reason,
        when: datetime,
        *,
        consent_event_id: str | None = None,
        fence: dict[str, int] | None = None,
        detail: str | None = None,
    ) -> DispatchDecision:
        recorded = DispatchDecision.on(
            request,
            decision,
            reason,
            when,
            consent_event_id=consent_event_id,
            detail=detail,
            fence=fence if fence is not None else self.fence(),
        )
        offset = self._offset("decisions", 0)
        self.history.decisions.append(
            LoggedDecision(recorded, when + timedelta(milliseconds=1), 0, offset)
        )
        self._facts.record(recorded)
        return recorded

    def audit(self, as_of: datetime | None = None, **policy: object) -> AuditResult:
        """Audited at `as_of` (default: a day after the last record, nothing pending)."""
        moments = [e.log_time for e in self.history.events]
        moments += [r.log_time for r in self.history.requests]
        moments += [d.decision.decided_at for d in self.history.decisions]
        when = as_of or max(moments, default=T0) + timedelta(days=1)
        return audit(
            self.history,
            AuditPolicy(frequency=self.frequency, as_of=when, **policy),  # type: ignore[arg-type]
        )
