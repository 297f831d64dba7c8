"""Applies quiet hours to what the consent rules allow: the request goes now,
waits for the recipient's window (`deferred`), or is dropped as too late."""

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import phonenumbers

from shared.contract.decisions import Decision, Reason
from shared.contract.requests import SendRequest
from shared.dispatch.opening_schedule import cached_next_opening
from shared.dispatch.quiet_hours import QuietHoursPolicy, Timing, decide_timing, recipient_zones
from shared.dispatch.rules import Verdict
from shared.identifiers import is_bsuid

# A policy that never defers: every hour of every day is inside its window.
ALWAYS_OPEN = QuietHoursPolicy.from_settings({"default": "00:00-00:00"})


def decide_in_time(
    verdict: Verdict,
    request: SendRequest,
    policy: QuietHoursPolicy,
    now: datetime,
    known_timezone: str | None = None,
) -> Verdict:
    """Returns `verdict` when the request may go now; else a deferral to the
    window's next opening, or a drop when that is past `deliver_by`.

    A request the consent rules drop is dropped at once: waiting would not change
    that. One held back only by the frequency cap is deferred like one allowed,
    and decided again at the opening, when the cap counts anew."""
    if verdict.decision is Decision.DROPPED and verdict.reason is not Reason.FREQUENCY_CAPPED:
        return verdict
    if verdict.decision is Decision.DEFERRED:
        # Held by the platform: decided again when the hold ends, quiet hours then.
        held = verdict.not_before
        if request.deliver_by is not None and held is not None and request.deliver_by < held:
            return Verdict(
                decision=Decision.DROPPED,
                reason=Reason.DELIVER_BY_PASSED,
                consent_event_id=verdict.consent_event_id,
                detail=f"held until {held.isoformat()}, past deliver_by",
            )
        return verdict
    # The request's own zone first, then the one the person's consent gave.
    zones, region = _zones_and_region(request.recipient, request.timezone or known_timezone)
    timing, not_before = decide_timing(
        policy, request.purpose, zones, region, now, request.deliver_by, cached_next_opening
    )
    if timing is Timing.SEND_NOW:
        return verdict
    if timing is Timing.TOO_LATE:
        when = "now" if not_before is None else f"at {not_before.isoformat()}"
        return Verdict(
            decision=Decision.DROPPED,
            reason=Reason.DELIVER_BY_PASSED,
            consent_event_id=verdict.consent_event_id,
            detail=f"it could go {when}, after deliver_by {request.deliver_by}",
        )
    return Verdict(
        decision=Decision.DEFERRED,
        reason=Reason.QUIET_HOURS,
        consent_event_id=verdict.consent_event_id,
        detail="outside the recipient's window in "
        + ", ".join(z.key for z in zones[:4])
        + (f" and {len(zones) - 4} more zones" if len(zones) > 4 else ""),
        not_before=not_before,
    )


@lru_cache(maxsize=65_536)
def _zones_and_region(
    recipient: str, timezone: str | None
) -> tuple[tuple[ZoneInfo, ...], str | None]:
    # Thousands of requests a second repeat a few recipients: parse each once.
    if is_bsuid(recipient):
        # A user id begins with its country: the region that the windows name.
        return recipient_zones(recipient, timezone), recipient.split(".", 1)[0]
    number = phonenumbers.parse(recipient)
    return recipient_zones(recipient, timezone), phonenumbers.region_code_for_number(number)
