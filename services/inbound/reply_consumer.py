"""Turns replies on whatsapp.inbound.v1 into OptedOut/OptedIn events on consent.events.v1,
then the confirmation request on messages.requests.v1, and what the webhook says about
who is who into identity events. Committed only after all are acknowledged."""

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

import structlog
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker

from services.inbound import metrics
from services.inbound.domain.classifier import KeywordConfig, Language
from services.inbound.domain.identities import LinksWritten, change_event, link_event
from services.inbound.domain.moments import reported_moment
from services.inbound.domain.provenance import Provenance
from services.inbound.domain.replies import reply_effects
from services.inbound.domain.signals import Undeliverable, user_messaged_event
from services.inbound.meta_signature import ANY_WRITER, RecordTrust
from shared.consent.authenticity import UNAUTHENTICATED_SOURCE, SigningKey
from shared.consent.platform_signals import DEFAULT_PROMOTIONAL, signal_event
from shared.contract.events import ConsentEvent, EventType
from shared.contract.purposes import Purpose
from shared.contract.webhook import (
    InboundReply,
    WebhookBody,
    identity_changes,
    identity_links,
    inbound_replies,
    malformed_messages,
    parse_webhook,
    platform_signals,
)
from shared.identifiers import first_identifier
from shared.kafka.dlq import dlq_headers
from shared.rejection import Rejected
from shared.topics import CONSENT_EVENTS, MESSAGES_REQUESTS, dlq

log = structlog.get_logger(__name__)


class ReplyProcessor:
    def __init__(
        self,
        broker: KafkaBroker,
        keywords: KeywordConfig,
        confirmations: Mapping[Language, str],
        signing_key: SigningKey,
        promotional: Sequence[Purpose] = DEFAULT_PROMOTIONAL,
        trust: RecordTrust = ANY_WRITER,
    ) -> None:
        self.broker = broker
        self.trust = trust
        self.signing_key = signing_key
        self.keywords = keywords
        self.confirmations = confirmations
        self.links_written = LinksWritten()
        self.undeliverable = Undeliverable()
        self.promotional = promotional

    async def handle(self, batch: list[ConsumerRecord]) -> None:
        """Handles a batch for the consume loop: each record in log order, so that a
        user's STOP and START keep their order."""
        for record in batch:
            await self.process(record)

    async def process(self, record: ConsumerRecord) -> None:
        provenance = self.trust.provenance(record.value, record.headers or ())
        unproven = [(UNAUTHENTICATED_SOURCE, provenance.unproven or "")]
        body = parse_webhook(record.value)
        if isinstance(body, Rejected):
            await self.dead_letter(
                record, _rejection([*unproven, (body.reason, body.detail)]) or body
            )
            return
        received_at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
        # Links and changes of identity move consent between identifiers: proven only.
        unread = await self._record_identities(body, received_at) if provenance.proven else []
        unread += await self._record_signals(body, received_at, provenance)
        unresolved = []
        for reply in inbound_replies(body):
            subject = reply_subject(reply)
            if subject is None:
                # Neither a phone number nor a user id: an operator must see it
                # rather than lose a possible STOP.
                unresolved.append(reply.message_id)
                continue
            effects = reply_effects(reply, subject, received_at, self.keywords, self.confirmations)
            c = effects.classification
            metrics.REPLIES.labels(c.kind.value, c.language.value if c.language else "").inc()
            event = effects.event
            if event is not None and provenance.admits(event):
                await self._write(event, provenance.signs)
                log.info(
                    "reply recorded",
                    type=event.type,
                    event_id=event.event_id,
                    signed=provenance.signs,
                )
            if effects.confirmation is not None and provenance.confirms:
                await self.broker.publish(
                    effects.confirmation.model_dump_json().encode(),
                    MESSAGES_REQUESTS,
                    key=subject.encode(),
                )
            if provenance.proven:  # only a proven message shows that its sender is reachable
                await self._record_reachable(reply, subject, event is None, received_at)
        # The rest was processed all the same; the record goes to the DLQ once, with
        # every part we could not use, so that a person sees it.
        problems = [
            *unproven,
            ("malformed_message", "; ".join(malformed_messages(body))),
            *unread,
        ]
        if unresolved:
            problems.append(
                (
                    "unresolvable_sender",
                    f"messages {unresolved} carry no valid phone number (wa_id) "
                    "or business-scoped user id",
                )
            )
        if (rejected := _rejection(problems)) is not None:
            await self.dead_letter(record, rejected)

    async def _record_signals(
        self, body: WebhookBody, received_at: datetime, provenance: Provenance
    ) -> list[tuple[str, str]]:
        """Publishes what WhatsApp itself reported of users (shared/consent/platform_signals.py);
        returns, as (DLQ reason, detail), the reports that name no valid identifier."""
        unread = []
        for reported in platform_signals(body):
            # WhatsApp stamps to the second: counted from its end, as replies are.
            moment = reported_moment(reported.reported_at, received_at)
            signal = reported.model_copy(update={"reported_at": moment})
            event = signal_event(signal, received_at, self.promotional)
            if event is None:
                unread.append(
                    (
                        "unresolvable_sender",
                        f"{signal.where} reports {signal.kind} of no valid phone number or user id",
                    )
                )
                continue
            if not provenance.admits(event):
                continue
            await self._publish_event(event, provenance.signs)
            # Marked even unproven: the failure counts, so the person's next message
            # must clear it.
            if event.type is EventType.DELIVERY_FAILED:
                self.undeliverable.mark(event.subject)
        return unread

    async def _record_reachable(
        self, reply: InboundReply, subject: str, plain: bool, received_at: datetime
    ) -> None:
        """A person reported undeliverable wrote again: a plain message says so with a
        UserMessaged (a STOP or START says it by itself)."""
        marked = [
            i
            for i in (subject, reply.wa_id, reply.user_id)
            if i and self.undeliverable.is_marked(_canonical(i))
        ]
        if not marked:
            return
        if plain:
            at = reported_moment(reply.sent_at, received_at)
            await self._publish_event(user_messaged_event(subject, reply.message_id, at))
        for identifier in marked:
            self.undeliverable.clear(_canonical(identifier))

    async def _publish_event(self, event: ConsentEvent, signed: bool = True) -> None:
        await self._write(event, signed)
        metrics.PLATFORM_EVENTS.labels(event.type.value).inc()

    async def _write(self, event: ConsentEvent, signed: bool = True) -> None:
        """Publishes an event, signed as what WhatsApp said unless its record was not
        proven to be Meta's: only a signed event can lift a STOP
        (shared/consent/authenticity.py)."""
        value = event.model_dump_json().encode()
        headers = {}
        if signed:
            name, signature = self.signing_key.header(value)
            headers[name] = signature.decode()
        await self.broker.publish(
            value, CONSENT_EVENTS, key=event.subject.encode(), headers=headers
        )

    async def _record_identities(
        self, body: WebhookBody, received_at: datetime
    ) -> list[tuple[str, str]]:
        """Publishes the links the webhook shows (each pairing once per process, at its
        earliest moment) and the changes its system messages report, before the
        replies they may concern. Returns, as (DLQ reason, detail), the changes it
        could not read: an old number left with its owner's consent must be seen."""
        links = [e for link in identity_links(body) if (e := link_event(link, received_at))]
        fresh: dict[tuple[str, str | None], ConsentEvent] = {}
        for event in sorted(links, key=lambda e: e.occurred_at):
            if self.links_written.is_new(event):
                fresh.setdefault((event.subject, event.linked), event)
        changes: list[ConsentEvent] = []
        unread: list[tuple[str, str]] = []
        for change in identity_changes(body):
            moved = change_event(change, received_at)
            if moved is not None:
                changes.append(moved)
            elif change.previous != change.current:
                unread.append(
                    (
                        "invalid_identity",
                        f"system message {change.message_id} ({change.kind}) names an "
                        "identifier that is not a valid phone number or user id",
                    )
                )
        for event in [*fresh.values(), *changes]:
            await self._write(event)
            metrics.IDENTITY_EVENTS.labels(event.type.value).inc()
        for event in fresh.values():
            self.links_written.remember(event)
        return unread

    async def dead_letter(self, record: ConsumerRecord, rejected: Rejected) -> None:
        metrics.DEAD_LETTERED.labels(rejected.reason).inc()
        log.warning("webhook dead-lettered", reason=rejected.reason, detail=rejected.detail)
        headers = _text_headers(dlq_headers(record, rejected))
        await self.broker.publish(
            record.value or b"", dlq(record.topic), key=record.key, headers=headers
        )


def reply_subject(reply: InboundReply) -> str | None:
    """Names the sender by phone number when the webhook gives a valid one, else by
    business-scoped user id: a STOP from a user whose number Meta does not share is
    still their STOP (the link, when it comes, joins it to the number)."""
    return first_identifier(reply.wa_id, reply.user_id)


def _text_headers(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    """FastStream publishes text: a header without a value (Kafka allows one) travels
    empty, bytes that are not UTF-8 with U+FFFD in their place. Never raising matters:
    a dead letter that cannot be written would hold its partition forever."""
    return {k: "" if v is None else v.decode(errors="replace") for k, v in headers}


def _rejection(problems: list[tuple[str, str]]) -> Rejected | None:
    """The first problem names the reason; the detail says every one."""
    found = [(reason, detail) for reason, detail in problems if detail]
    if not found:
        return None
    return Rejected(reason=found[0][0], detail="; ".join(detail for _, detail in found))


def _canonical(identifier: str) -> str:
    return first_identifier(identifier) or identifier
