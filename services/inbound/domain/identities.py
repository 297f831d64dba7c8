"""Turns what a webhook says about identities into identity events on consent.events.v1:
an IdentityLinked for each phone number seen with a business-scoped user id, an
IdentifierChanged for each change a system message reports.

Ids derive from where the webhook said it, so a redelivered webhook repeats the
same records, which the projector ignores; the consumer also remembers the links
it wrote (`LinksWritten`), since every status webhook repeats the same pairing.
"""

import uuid
from collections import OrderedDict
from datetime import datetime

from services.inbound.domain.moments import reported_moment
from shared.contract.events import WHATSAPP_WEBHOOK, ConsentEvent, EventType
from shared.contract.webhook import IdentityChange, IdentityLink
from shared.identifiers import IdentifierKind, identifier_kind, normalize_identifier
from shared.phone import InvalidPhoneNumberError

_IDS = uuid.UUID("0d6a43c5-6f1e-4a4e-9b7e-1a0f5c7d2b64")


def link_event(link: IdentityLink, received_at: datetime) -> ConsentEvent | None:
    """Returns the IdentityLinked event of `link`, keyed by the phone number; None when
    either side is not an identifier of its kind (the webhook's other content still
    counts)."""
    try:
        phone = normalize_identifier(link.wa_id)
        user_id = normalize_identifier(link.user_id)
    except InvalidPhoneNumberError:
        return None
    if identifier_kind(phone) is not IdentifierKind.PHONE:
        return None
    if identifier_kind(user_id) is not IdentifierKind.WHATSAPP_USER_ID:
        return None
    moment = reported_moment(link.seen_at, received_at)
    # Every field of the event is in its id: one id, one payload, so that a pairing
    # written again (a redelivery, a restart) is a no-op, never an event_id_conflict.
    key = f"identity-link:{phone}:{user_id}:{link.where}:{moment.isoformat()}"
    return ConsentEvent(
        event_id=str(uuid.uuid5(_IDS, key)),
        type=EventType.IDENTITY_LINKED,
        subject=phone,
        linked=user_id,
        occurred_at=moment,
        source=WHATSAPP_WEBHOOK,
        evidence={"webhook": link.where},
    )


def change_event(change: IdentityChange, received_at: datetime) -> ConsentEvent | None:
    """Returns the IdentifierChanged event of `change`, keyed by the new identifier;
    None when a side is invalid or the two are not of one kind."""
    try:
        previous = normalize_identifier(change.previous)
        current = normalize_identifier(change.current)
    except InvalidPhoneNumberError:
        return None
    if previous == current or identifier_kind(previous) is not identifier_kind(current):
        return None
    return ConsentEvent(
        event_id=str(
            uuid.uuid5(_IDS, f"identifier-changed:{change.message_id}:{identifier_kind(current)}")
        ),
        type=EventType.IDENTIFIER_CHANGED,
        subject=current,
        previous=previous,
        occurred_at=reported_moment(change.changed_at, received_at),
        source=WHATSAPP_WEBHOOK,
        evidence={"message_id": change.message_id, "system_type": change.kind},
    )


class LinksWritten:
    """Remembers the most recent pairings written, so that a pairing repeated by every
    status webhook goes to the log once per process, not thousands of times a second.
    A pairing written again after a restart is harmless: linking two identifiers
    already linked changes no one's state."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._capacity = capacity

    def is_new(self, event: ConsentEvent) -> bool:
        pair = (event.subject, event.linked or "")
        if pair in self._seen:
            self._seen.move_to_end(pair)
            return False
        return True

    def remember(self, event: ConsentEvent) -> None:
        self._seen[(event.subject, event.linked or "")] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
