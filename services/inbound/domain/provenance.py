"""What a record of whatsapp.inbound.v1 may make inbound write, by whether it is proven
to be Meta's webhook (services/inbound/meta_signature.py decides that)."""

from dataclasses import dataclass

from shared.consent.authenticity import RESTRICTING
from shared.contract.events import ConsentEvent


@dataclass(frozen=True)
class Provenance:
    """`unproven` says why the record is not proven to be Meta's; None when it is, or
    when the deployment believes every record of the topic (INBOUND_TOPIC_TRUST=any)."""

    unproven: str | None = None

    @property
    def proven(self) -> bool:
        return self.unproven is None

    def admits(self, event: ConsentEvent) -> bool:
        """An unproven record may only take permission away: a forged STOP can only
        stop messages, while a forged START, link or resume would let them through."""
        return self.proven or event.type in RESTRICTING

    @property
    def signs(self) -> bool:
        """Inbound's signature says WhatsApp spoke: an unproven restriction goes out
        unsigned, so that its readers know it was not proven (and
        UNSIGNED_RESTRICTIONS=refuse refuses it)."""
        return self.proven

    @property
    def confirms(self) -> bool:
        """The confirmation is a message to the number: a forged STOP must not make
        us write to anyone."""
        return self.proven
