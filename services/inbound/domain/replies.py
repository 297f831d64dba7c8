"""Turns a user's reply into what it means for consent, as values: the OptedOut/OptedIn
event and the one confirmation request. Ids derive from the WhatsApp message id, so a
redelivered webhook yields the same records and changes nothing downstream."""

import uuid
from collections.abc import Mapping
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from services.inbound.domain.classifier import (
    Classification,
    KeywordConfig,
    Language,
    ReplyKind,
    classify_reply,
    detect_language,
)
from services.inbound.domain.moments import reported_moment
from shared.contract.events import WHATSAPP_REPLY, ConsentEvent, EventType
from shared.contract.purposes import OPT_OUT_CONFIRMATION
from shared.contract.requests import SendRequest
from shared.contract.webhook import InboundReply

_IDS = uuid.UUID("6f1c1c55-3a55-4c1e-9d0e-6b0f3c2a9e11")

DEFAULT_CONFIRMATIONS: Mapping[Language, str] = {
    Language.EN: "You have unsubscribed and will get no more messages from us. "
    "Reply START to subscribe again.",
    Language.RU: "Вы отписались и больше не будете получать от нас сообщения. "
    "Чтобы подписаться снова, отправьте СТАРТ.",
}


class ReplyEffects(BaseModel):
    model_config = ConfigDict(frozen=True)

    classification: Classification
    event: ConsentEvent | None = None
    confirmation: SendRequest | None = None


def classify_texts(texts: tuple[str, ...], keywords: KeywordConfig) -> Classification:
    """A button carries a payload and a title: either may say it. Opt-out wins,
    since missing one breaks clause 4.3 while a wrong one only pauses messages."""
    results = [classify_reply(text, keywords) for text in texts]
    for kind in (ReplyKind.OPT_OUT, ReplyKind.OPT_IN):
        for result in results:
            if result.kind is kind:
                return result
    return results[0] if results else classify_reply("", keywords)


def reply_effects(
    reply: InboundReply,
    subject: str,
    received_at: datetime,
    keywords: KeywordConfig,
    confirmations: Mapping[Language, str] = DEFAULT_CONFIRMATIONS,
) -> ReplyEffects:
    classification = classify_texts(reply.texts, keywords)
    if classification.kind is ReplyKind.OTHER:
        return ReplyEffects(classification=classification)
    kind = EventType.OPTED_OUT if classification.kind is ReplyKind.OPT_OUT else EventType.OPTED_IN
    language = classification.language or detect_language(" ".join(reply.texts)) or Language.EN
    event = ConsentEvent(
        event_id=str(uuid.uuid5(_IDS, f"whatsapp-reply:{reply.message_id}")),
        type=kind,
        subject=subject,
        occurred_at=reported_moment(reply.sent_at, received_at),
        source=WHATSAPP_REPLY,
        evidence={
            "message_id": reply.message_id,
            "text": " | ".join(reply.texts)[:1000],
            "keyword": classification.keyword,
            "language": language.value,
        },
    )
    if kind is not EventType.OPTED_OUT:
        return ReplyEffects(classification=classification, event=event)
    confirmation = SendRequest(
        request_id=str(uuid.uuid5(_IDS, f"opt-out-confirmation:{event.event_id}")),
        recipient=subject,
        purpose=OPT_OUT_CONFIRMATION,
        message={
            "type": "text",
            "text": {"body": confirmations.get(language, confirmations[Language.EN])},
        },
        requested_at=received_at,
        opt_out_event_id=event.event_id,
    )
    return ReplyEffects(classification=classification, event=event, confirmation=confirmation)
