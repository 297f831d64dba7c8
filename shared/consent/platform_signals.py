"""Turns what WhatsApp itself reports of a user into events on consent.events.v1 (inbound
from webhooks, the dispatcher's sender from the send call's errors), each
with a source of its own, so that the platform's word never lets more through:

- a `user_preferences` stop, or a failed status with 131050 (the user stopped
  marketing messages from this business): MarketingStopped of the purposes the
  deployment counts as promotional risk; a resume: MarketingResumed, which gives
  back only what those stops took;
- 131049 (Meta's per-user marketing limit): DeliveryLimited, which holds the
  person's sends, confirmations aside, for 24 h;
- 131026 (undeliverable): DeliveryFailed; repeated, the identifier is unreachable
  until the person writes again (UserMessaged).

Ids derive from the report, so a redelivered webhook repeats the same records.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime

from shared.contract.events import (
    WHATSAPP_STATUS,
    WHATSAPP_USER_PREFERENCES,
    ConsentEvent,
    EventType,
)
from shared.contract.purposes import Purpose
from shared.contract.webhook import (
    MARKETING_LIMIT_CODE,
    MARKETING_STOPPED_CODE,
    UNDELIVERABLE_CODE,
    PlatformSignal,
)
from shared.identifiers import first_identifier

# The namespace of the ids of every event derived from the platform's reports.
SIGNAL_IDS = uuid.UUID("3b0e6c1f-2a7d-4f59-8c4e-5d2b7a9e1f30")

# What a platform's marketing stop revokes unless the deployment says otherwise
# (PROMOTIONAL_PURPOSES). Of the clause 3.2 purposes only educational
# material reads as promotion to a user, and Meta blocks exactly the marketing
# templates after a stop: the reminders, confirmations and answers a person asked
# for are utility messages it still delivers, and revoking them would hide from
# them what they registered for.
DEFAULT_PROMOTIONAL: tuple[Purpose, ...] = (Purpose.EDUCATIONAL_MATERIAL,)

# What each report becomes, and from where Meta reports it.
_EVENTS: dict[str, tuple[EventType, str]] = {
    "stop": (EventType.MARKETING_STOPPED, WHATSAPP_USER_PREFERENCES),
    "resume": (EventType.MARKETING_RESUMED, WHATSAPP_USER_PREFERENCES),
    MARKETING_STOPPED_CODE: (EventType.MARKETING_STOPPED, WHATSAPP_STATUS),
    MARKETING_LIMIT_CODE: (EventType.DELIVERY_LIMITED, WHATSAPP_STATUS),
    UNDELIVERABLE_CODE: (EventType.DELIVERY_FAILED, WHATSAPP_STATUS),
}
# What the send call's errors can become: all that the dispatcher's sender signs, so
# the readers may limit its key to these (EVENT_VERIFY_KEYS).
STATUS_SIGNAL_TYPES = frozenset(
    kind for kind, source in _EVENTS.values() if source == WHATSAPP_STATUS
)


def signal_event(
    signal: PlatformSignal, received_at: datetime, promotional: Sequence[Purpose]
) -> ConsentEvent | None:
    """Returns the event of `signal`; None when it names no valid identifier. Placed at
    the report's time (never later than `received_at`): callers that know better,
    as inbound does for WhatsApp's whole seconds, say so in `reported_at`."""
    subject = first_identifier(signal.wa_id, signal.user_id)
    if subject is None:
        return None
    kind, source = _EVENTS[signal.kind]
    moment = received_at if signal.reported_at is None else min(signal.reported_at, received_at)
    key = f"platform-signal:{subject}:{signal.kind}:{signal.where}:{moment.isoformat()}"
    return ConsentEvent(
        event_id=str(uuid.uuid5(SIGNAL_IDS, key)),
        type=kind,
        subject=subject,
        occurred_at=moment,
        source=source,
        purposes=tuple(promotional) if kind is EventType.MARKETING_STOPPED else None,
        evidence={"webhook": signal.where, "reported": signal.kind},
    )
