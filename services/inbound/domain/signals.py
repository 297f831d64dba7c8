"""Inbound's side of the platform's signals: a person reported undeliverable who writes
again (shared/consent/platform_signals.py has the rest)."""

import uuid
from collections import OrderedDict
from datetime import datetime

from shared.consent.platform_signals import SIGNAL_IDS
from shared.contract.events import WHATSAPP_REPLY, ConsentEvent, EventType


def user_messaged_event(subject: str, message_id: str, at: datetime) -> ConsentEvent:
    """Says that the person wrote again: what was undeliverable reached them."""
    return ConsentEvent(
        event_id=str(uuid.uuid5(SIGNAL_IDS, f"user-messaged:{message_id}")),
        type=EventType.USER_MESSAGED,
        subject=subject,
        occurred_at=at,
        source=WHATSAPP_REPLY,
        evidence={"message_id": message_id},
    )


class Undeliverable:
    """Remembers the identifiers reported undeliverable, so that only their next
    message is written as UserMessaged: every reply of everyone would flood the log,
    and the contract keeps an ordinary reply from writing any event. A process that
    restarted forgets them: their next STOP or START still clears the mark, and a
    plain message from them then does not (docs/contract.md says so)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._marked: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def mark(self, identifier: str) -> None:
        self._marked[identifier] = None
        self._marked.move_to_end(identifier)
        if len(self._marked) > self._capacity:
            self._marked.popitem(last=False)

    def is_marked(self, identifier: str) -> bool:
        return identifier in self._marked

    def clear(self, identifier: str) -> None:
        self._marked.pop(identifier, None)
