"""Judges the events that claimed WhatsApp as their source without its signature
(shared/consent/authenticity.py): the projection refused each, and each is a
violation all the same, since someone able to write to the log tried to speak for a
user (clause 4.4: only the user can lift their STOP)."""

from collections.abc import Iterable

from services.audit.findings import EventRef, Finding, FindingKind, finding
from services.audit.history import AuditPolicy
from shared.consent.state import LoggedEvent


def judge_forgeries(
    forged: Iterable[tuple[LoggedEvent, str]], policy: AuditPolicy
) -> list[Finding]:
    return [
        finding(
            FindingKind.FORGED_EVENT,
            recipient=logged.event.subject,
            at=logged.log_time,
            detail=f"refused, never applied: {why}",
            events=(EventRef.of(logged),),
        )
        for logged, why in forged
        if policy.in_range(logged.log_time)
    ]
