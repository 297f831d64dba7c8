"""Reads the WhatsApp Cloud API webhook body (`whatsapp.inbound.v1`) leniently:
Meta adds fields over time, so only what we use is modelled and the rest is kept."""

from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.json_schema import SkipJsonSchema

from shared.contract.limits import MAX_DEPTH, MAX_WEBHOOK_BYTES, WEBHOOK_BODY, decoded_within
from shared.rejection import Rejected, rejection_from


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


_T = TypeVar("_T", bound=_Lenient)


class TextBody(_Lenient):
    body: str = ""


class Button(_Lenient):
    text: str | None = None
    payload: str | None = None


class Reply(_Lenient):
    id: str | None = None
    title: str | None = None


class Interactive(_Lenient):
    type: str | None = None
    button_reply: Reply | None = None
    list_reply: Reply | None = None


class System(_Lenient):
    """A system message: the user changed their number (`user_changed_number`, with the
    new number in `wa_id`) or their business-scoped user id (`user_changed_user_id`);
    both carry the new `user_id` beside the `previous_user_id` (since August 2026)."""

    type: str | None = None
    wa_id: str | int | None = None
    # Before Cloud API v12 the new number came as `new_wa_id`.
    new_wa_id: str | int | None = None
    user_id: str | None = None
    previous_user_id: str | None = None


class Message(_Lenient):
    id: str
    # Meta sends strings; digits sent as a JSON number by a gateway mean the same.
    from_: str | int | None = Field(default=None, alias="from")
    # Business-scoped user ids arrive on newer payloads, sometimes without `from`.
    from_user_id: str | None = None
    timestamp: str | int | None = None
    type: str | None = None
    text: TextBody | None = None
    button: Button | None = None
    interactive: Interactive | None = None
    system: System | None = None
    # Set when the message was written in a group: it is still its sender's own.
    group_id: str | None = None


class Contact(_Lenient):
    wa_id: str | int | None = None
    user_id: str | None = None


class StatusError(_Lenient):
    code: int | str | None = None


class Status(_Lenient):
    """The fate of a message we sent (sent, delivered, read, failed), with who it went to
    and, when it failed, Meta's error codes."""

    id: str | None = None
    status: str | None = None
    recipient_id: str | int | None = None
    recipient_user_id: str | None = None
    timestamp: str | int | None = None
    errors: list[StatusError] | None = None


class UserPreference(_Lenient):
    """A user stopped or resumed a category of messages in WhatsApp itself."""

    wa_id: str | int | None = None
    user_id: str | None = None
    category: str | None = None
    value: str | None = None
    timestamp: str | int | None = None


class Value(_Lenient):
    messaging_product: str | None = None
    contacts: list[Contact] | None = None
    messages: list[Message] = []
    # Statuses are read for the identities they name only: one we cannot read is
    # left out, as status webhooks always were (contract section 5).
    statuses: list[Status] = []
    # Read like statuses: an item not in the shape we read is left out.
    user_preferences: list[UserPreference] = []
    # The messages not in the shape we read, as "messages.N: why". They do not
    # refuse the webhook: a STOP beside one is still a STOP (the record then goes
    # to the DLQ as well, for a person to see the rest).
    malformed: SkipJsonSchema[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _each_message_on_its_own(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {
            **data,
            "statuses": _readable(Status, data.get("statuses")),
            "user_preferences": _readable(UserPreference, data.get("user_preferences")),
        }
        messages = data.get("messages")
        if not isinstance(messages, list):
            return {**data, "malformed": ()}
        kept, malformed = [], []
        for index, message in enumerate(messages):
            try:
                kept.append(Message.model_validate(message))
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                where = ".".join(str(part) for part in (index, *first["loc"]))
                malformed.append(f"messages.{where}: {first['msg']}")
        return {**data, "messages": kept, "malformed": tuple(malformed)}


def _readable(model: type[_T], items: Any) -> list[_T]:
    if not isinstance(items, list):
        return []
    readable = []
    for item in items:
        try:
            readable.append(model.model_validate(item))
        except ValidationError:
            continue
    return readable


class Change(_Lenient):
    field: str | None = None
    value: Value | None = None


class Entry(_Lenient):
    id: str | None = None
    changes: list[Change] = []


class WebhookBody(_Lenient):
    model_config = ConfigDict(
        json_schema_extra={
            "description": f"At most {MAX_DEPTH} levels deep and {MAX_WEBHOOK_BYTES} bytes of JSON "
            "(too_deep, too_large)"
        }
    )

    object: str | None = None
    entry: list[Entry]


class InboundReply(BaseModel):
    """Holds one user message, flattened: the texts a person could have meant as a reply."""

    model_config = ConfigDict(frozen=True)

    message_id: str
    wa_id: str | None
    user_id: str | None
    sent_at: datetime | None
    texts: tuple[str, ...]


def parse_webhook(raw: bytes | None) -> WebhookBody | Rejected:
    body = decoded_within(raw, WEBHOOK_BODY)
    if isinstance(body, Rejected):
        return body
    if "entry" not in body:
        return Rejected(reason="not_a_webhook", detail="no 'entry' list: not a WhatsApp webhook")
    try:
        return WebhookBody.model_validate(body)
    except ValidationError as exc:
        return rejection_from(exc, default_reason="not_a_webhook")


class IdentityLink(BaseModel):
    """Says that a webhook named one person by a phone number (wa_id digits, unchecked)
    and a business-scoped user id at once."""

    model_config = ConfigDict(frozen=True)

    wa_id: str
    user_id: str
    seen_at: datetime | None
    where: str  # "contacts", "messages" or "statuses", and the item's id


class IdentityChange(BaseModel):
    """Says that a user's identifier changed (a system message): `previous` names them
    no more, `current` does, from `changed_at` on."""

    model_config = ConfigDict(frozen=True)

    message_id: str
    kind: str  # "user_changed_number" or "user_changed_user_id"
    previous: str
    current: str
    changed_at: datetime | None


def identity_links(body: WebhookBody) -> list[IdentityLink]:
    """Returns every pairing of a wa_id with a user_id the webhook carries: in contacts,
    in messages (`from` with `from_user_id`) and in statuses (`recipient_id` with
    `recipient_user_id`). System messages pair nothing: they report a change."""
    links = []
    for value in _values(body):
        for contact in value.contacts or []:
            if contact.wa_id is not None and contact.user_id:
                links.append(
                    IdentityLink(
                        wa_id=str(contact.wa_id),
                        user_id=contact.user_id,
                        seen_at=None,
                        where="contacts",
                    )
                )
        for message in value.messages:
            if message.type != "system" and message.from_ is not None and message.from_user_id:
                links.append(
                    IdentityLink(
                        wa_id=str(message.from_),
                        user_id=message.from_user_id,
                        seen_at=_sent_at(message.timestamp),
                        where=f"messages:{message.id}",
                    )
                )
        for status in value.statuses:
            if status.recipient_id is not None and status.recipient_user_id:
                links.append(
                    IdentityLink(
                        wa_id=str(status.recipient_id),
                        user_id=status.recipient_user_id,
                        seen_at=_sent_at(status.timestamp),
                        where=f"statuses:{status.id}",
                    )
                )
    return links


def identity_changes(body: WebhookBody) -> list[IdentityChange]:
    """Returns the changes system messages report: the number (`from` to `system.wa_id`)
    and the user id (`system.previous_user_id` to `system.user_id`), each when both
    its sides are given."""
    changes = []
    for value in _values(body):
        for message in value.messages:
            system = message.system
            if message.type != "system" or system is None:
                continue
            at = _sent_at(message.timestamp)
            new_number = system.wa_id if system.wa_id is not None else system.new_wa_id
            if message.from_ is not None and new_number is not None:
                changes.append(
                    IdentityChange(
                        message_id=message.id,
                        kind=system.type or "user_changed_number",
                        previous=str(message.from_),
                        current=str(new_number),
                        changed_at=at,
                    )
                )
            if system.previous_user_id and system.user_id:
                changes.append(
                    IdentityChange(
                        message_id=message.id,
                        kind=system.type or "user_changed_user_id",
                        previous=system.previous_user_id,
                        current=system.user_id,
                        changed_at=at,
                    )
                )
    return changes


class PlatformSignal(BaseModel):
    """Says what WhatsApp itself reported of a user: a marketing preference changed
    (`stop`, `resume`) or a failed status's error code (131050, 131049, 131026)."""

    model_config = ConfigDict(frozen=True)

    kind: str  # "stop", "resume", or the error code as digits
    wa_id: str | None
    user_id: str | None
    reported_at: datetime | None
    where: str  # "user_preferences" or "statuses:<message id>"


# The error codes of failed statuses that say something about the user.
MARKETING_STOPPED_CODE = "131050"
MARKETING_LIMIT_CODE = "131049"
UNDELIVERABLE_CODE = "131026"
SIGNAL_CODES = frozenset({MARKETING_STOPPED_CODE, MARKETING_LIMIT_CODE, UNDELIVERABLE_CODE})


def platform_signals(body: WebhookBody) -> list[PlatformSignal]:
    """Returns the marketing preferences (`user_preferences[]` of category
    `marketing_messages`) and the failed statuses with a code in `SIGNAL_CODES`."""
    signals = []
    for value in _values(body):
        for preference in value.user_preferences:
            if preference.category == "marketing_messages" and preference.value in (
                "stop",
                "resume",
            ):
                signals.append(
                    PlatformSignal(
                        kind=preference.value,
                        wa_id=None if preference.wa_id is None else str(preference.wa_id),
                        user_id=preference.user_id,
                        reported_at=_sent_at(preference.timestamp),
                        where="user_preferences",
                    )
                )
        for status in value.statuses:
            if status.status != "failed":
                continue
            codes = {str(e.code) for e in status.errors or () if e.code is not None}
            for code in sorted(codes & SIGNAL_CODES):
                signals.append(
                    PlatformSignal(
                        kind=code,
                        wa_id=None if status.recipient_id is None else str(status.recipient_id),
                        user_id=status.recipient_user_id,
                        reported_at=_sent_at(status.timestamp),
                        where=f"statuses:{status.id}",
                    )
                )
    return signals


def inbound_replies(body: WebhookBody) -> list[InboundReply]:
    """Returns every user message of every entry[].changes[].value.messages[]; system
    messages, statuses and other fields carry no reply and yield nothing."""
    replies = []
    for value in _values(body):
        contacts = value.contacts or []
        for message in value.messages:
            if message.type == "system":
                continue
            sender = message.from_ or (contacts[0].wa_id if len(contacts) == 1 else None)
            user_id = message.from_user_id or (contacts[0].user_id if len(contacts) == 1 else None)
            replies.append(
                InboundReply(
                    message_id=message.id,
                    wa_id=None if sender is None else str(sender),
                    user_id=user_id,
                    sent_at=_sent_at(message.timestamp),
                    texts=_texts(message),
                )
            )
    return replies


def malformed_messages(body: WebhookBody) -> list[str]:
    """Tells why each message not in the shape we read was left out of `inbound_replies`."""
    return [why for value in _values(body) for why in value.malformed]


def _values(body: WebhookBody) -> list[Value]:
    return [c.value for entry in body.entry for c in entry.changes if c.value is not None]


def _texts(message: Message) -> tuple[str, ...]:
    candidates: list[str | None] = []
    if message.text is not None:
        candidates.append(message.text.body)
    if message.button is not None:
        candidates += [message.button.payload, message.button.text]
    if message.interactive is not None:
        for reply in (message.interactive.button_reply, message.interactive.list_reply):
            if reply is not None:
                candidates += [reply.id, reply.title]
    return tuple(c for c in candidates if c)


def _sent_at(timestamp: str | int | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(timestamp), UTC) if timestamp else None
    except (ValueError, OverflowError, OSError):
        return None
