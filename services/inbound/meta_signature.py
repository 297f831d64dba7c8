"""Meta's signature of a webhook body (`X-Hub-Signature-256`, HMAC-SHA256 of the raw
bytes under WHATSAPP_APP_SECRET): checked at the HTTP door, and checked again on
whatsapp.inbound.v1 under INBOUND_TOPIC_TRUST=meta_signed, where the receiver keeps
Meta's header on the record (RECORD_HEADER) so that the consumer can tell Meta's
webhooks from whatever else a client of the broker wrote there."""

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from services.inbound.domain.provenance import Provenance

RECORD_HEADER = "x-hub-signature-256"

_SIGNATURE = re.compile(rb"sha256=([0-9a-fA-F]{64})")


class TopicTrust(StrEnum):
    """Which records of whatsapp.inbound.v1 may speak for a user: `any` (the contract
    lets any gateway write the topic) or `meta_signed` (only those Meta's signature proves)."""

    ANY = "any"
    META_SIGNED = "meta_signed"


def signature_valid(secret: bytes, body: bytes, header: str | None) -> bool:
    """Returns True only when `header` is `sha256=<64 hex>`, the HMAC-SHA256 of `body`
    under a non-empty `secret`; any other header, ASCII or not, is simply invalid."""
    if not secret or not header:
        return False  # an empty key is one every sender knows
    try:
        match = _SIGNATURE.fullmatch(header.encode("ascii"))
    except UnicodeEncodeError:
        return False
    if match is None:
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode("ascii")
    return hmac.compare_digest(expected, match.group(1).lower())


def record_signature_problem(
    secret: bytes, value: bytes | None, headers: Iterable[tuple[str, bytes | None]]
) -> str | None:
    """Says why a record is not proven to be Meta's webhook, or None when its one
    RECORD_HEADER (the name in any case, as HTTP reads it) signs its value."""
    found = [v for k, v in headers if k.lower() == RECORD_HEADER]
    if not found:
        return f"it carries no {RECORD_HEADER} header"
    if len(found) > 1:
        # Two signatures leave it open which one a gateway meant: neither is believed.
        return f"it carries {len(found)} {RECORD_HEADER} headers"
    if found[0] is None:  # Kafka allows a header without a value
        return f"its {RECORD_HEADER} header has no value"
    try:
        header = found[0].decode("ascii")
    except UnicodeDecodeError:
        return f"its {RECORD_HEADER} header is not ASCII"
    if value is None or not signature_valid(secret, value, header):
        return f"its {RECORD_HEADER} header is not Meta's signature of its value"
    return None


@dataclass(frozen=True)
class RecordTrust:
    """Judges the records of whatsapp.inbound.v1 by INBOUND_TOPIC_TRUST."""

    trust: TopicTrust = TopicTrust.ANY
    secret: bytes = b""

    def provenance(
        self, value: bytes | None, headers: Iterable[tuple[str, bytes | None]]
    ) -> Provenance:
        # Under `any` the header is not even read: a wrong one changes nothing, as
        # a record without one changes nothing.
        if self.trust is TopicTrust.ANY:
            return Provenance()
        problem = record_signature_problem(self.secret, value, headers)
        if problem is None:
            return Provenance()
        return Provenance(
            unproven=f"INBOUND_TOPIC_TRUST is meta_signed and {problem}, so it is not "
            "proven to be Meta's webhook: of it only opt-outs and restricting platform "
            "signals are written, unsigned, and no confirmation is requested"
        )


# The contract's default: any gateway may write the topic, so every record is believed.
ANY_WRITER = RecordTrust()
