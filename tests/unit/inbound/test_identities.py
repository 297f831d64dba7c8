"""Who is who in the webhook as Meta sends it in 2026 (phone numbers beside business-scoped
user ids, system messages of changes), and the identity events inbound writes of it."""

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from services.inbound.domain.classifier import DEFAULT_KEYWORDS
from services.inbound.domain.identities import LinksWritten, change_event, link_event
from services.inbound.domain.replies import reply_effects
from services.inbound.reply_consumer import reply_subject
from shared.consent.event_identity import is_redelivery
from shared.consent.people import fold_people
from shared.contract.events import ConsentEvent, EventType
from shared.contract.webhook import (
    IdentityChange,
    IdentityLink,
    InboundReply,
    WebhookBody,
    identity_changes,
    identity_links,
    inbound_replies,
    malformed_messages,
    parse_webhook,
)
from tests.support.webhooks import webhook_body
from tests.unit.domain.builders import arrived, granted

WA_ID = "79161234567"
PHONE = "+79161234567"
NEW_WA_ID = "79251234567"
NEW_PHONE = "+79251234567"
USER_ID = "US.13491208655302741918"
NEW_USER_ID = "US.13491208655302749999"
GROUP_ID = "120363025246125244"

STAMP = "1795773600"
SENT = datetime.fromtimestamp(int(STAMP), UTC)
RECEIVED = SENT + timedelta(seconds=3)
# WhatsApp stamps to the second; what it reports counts from the end of that second.
END_OF_SENT_SECOND = SENT + timedelta(seconds=1, microseconds=-1)


def webhook(**value: Any) -> WebhookBody:
    """One change of field `messages` with this value, through the parser as it reads bytes."""
    body = webhook_body(value)
    parsed = parse_webhook(orjson.dumps(body))
    assert isinstance(parsed, WebhookBody), parsed
    return parsed


def contact(wa_id: str | None = WA_ID, user_id: str | None = USER_ID) -> dict[str, Any]:
    found: dict[str, Any] = {"profile": {"name": "Anna"}}
    if wa_id is not None:
        found["wa_id"] = wa_id
    if user_id is not None:
        found["user_id"] = user_id
    return found


def text(
    body: str = "STOP",
    *,
    message_id: str = "wamid.A",
    sender: str | None = WA_ID,
    user_id: str | None = USER_ID,
    **more: Any,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": message_id,
        "timestamp": STAMP,
        "type": "text",
        "text": {"body": body},
        **more,
    }
    if sender is not None:
        message["from"] = sender
    if user_id is not None:
        message["from_user_id"] = user_id
    return message


def status(
    recipient: str | None = WA_ID, user_id: str | None = USER_ID, *, state: str = "delivered"
) -> dict[str, Any]:
    found: dict[str, Any] = {"id": "wamid.OUT", "status": state, "timestamp": STAMP}
    if recipient is not None:
        found["recipient_id"] = recipient
    if user_id is not None:
        found["recipient_user_id"] = user_id
    return found


def number_changed(
    *, user_id: str = USER_ID, previous_user_id: str = USER_ID, new_number_field: str = "wa_id"
) -> dict[str, Any]:
    return {
        "from": WA_ID,
        "id": "wamid.SYS1",
        "timestamp": STAMP,
        "type": "system",
        "system": {
            "body": f"User A changed from {WA_ID} to {NEW_WA_ID}",
            new_number_field: NEW_WA_ID,
            "type": "user_changed_number",
            "user_id": user_id,
            "previous_user_id": previous_user_id,
        },
    }


def user_id_changed() -> dict[str, Any]:
    return {
        "id": "wamid.SYS2",
        "timestamp": STAMP,
        "type": "system",
        "system": {
            "body": "User A changed their user id",
            "type": "user_changed_user_id",
            "user_id": NEW_USER_ID,
            "previous_user_id": USER_ID,
        },
    }


def pairs(links: list[IdentityLink]) -> list[tuple[str, str, str]]:
    return [(link.wa_id, link.user_id, link.where) for link in links]


# ---------------------------------------------------------------- identity_links


def test_a_contact_and_its_message_each_pair_the_number_with_the_user_id() -> None:
    body = webhook(contacts=[contact()], messages=[text()])

    links = identity_links(body)

    assert pairs(links) == [(WA_ID, USER_ID, "contacts"), (WA_ID, USER_ID, "messages:wamid.A")]
    assert links[0].seen_at is None
    assert links[1].seen_at == SENT


def test_a_status_pairs_the_recipient_number_with_the_recipient_user_id() -> None:
    [link] = identity_links(webhook(statuses=[status()]))

    assert (link.wa_id, link.user_id, link.where) == (WA_ID, USER_ID, "statuses:wamid.OUT")
    assert link.seen_at == SENT


def test_a_malformed_status_is_skipped_without_refusing_the_webhook() -> None:
    broken = {"id": ["not", "a", "string"], "recipient_id": WA_ID, "recipient_user_id": USER_ID}

    body = webhook(statuses=[broken, 42, status()], messages=[text()])

    assert pairs(identity_links(body)) == [
        (WA_ID, USER_ID, "messages:wamid.A"),
        (WA_ID, USER_ID, "statuses:wamid.OUT"),
    ]
    assert [r.message_id for r in inbound_replies(body)] == ["wamid.A"]
    assert malformed_messages(body) == []


def test_a_user_known_only_by_user_id_pairs_nothing() -> None:
    body = webhook(
        contacts=[contact(wa_id=None)],
        messages=[text(sender=None)],
        statuses=[status(recipient=None)],
    )

    assert identity_links(body) == []


def test_a_number_without_a_user_id_pairs_nothing() -> None:
    body = webhook(contacts=[contact(user_id=None)], messages=[text(user_id=None)])

    assert identity_links(body) == []


def test_a_system_message_pairs_nothing_even_with_a_sender_user_id() -> None:
    message = {**number_changed(), "from_user_id": USER_ID}

    assert identity_links(webhook(messages=[message])) == []


# ---------------------------------------------------------------- identity_changes


def test_a_changed_number_goes_from_the_sender_to_the_system_wa_id() -> None:
    change = identity_changes(webhook(messages=[number_changed()]))[0]

    assert (change.previous, change.current) == (WA_ID, NEW_WA_ID)
    assert change.kind == "user_changed_number"
    assert change.message_id == "wamid.SYS1"
    assert change.changed_at == SENT


def test_a_changed_number_in_the_pre_v12_new_wa_id_field_is_read_too() -> None:
    body = webhook(messages=[number_changed(new_number_field="new_wa_id")])

    change = identity_changes(body)[0]

    assert (change.previous, change.current) == (WA_ID, NEW_WA_ID)


def test_a_changed_number_with_a_new_user_id_reports_both_changes() -> None:
    body = webhook(messages=[number_changed(user_id=NEW_USER_ID, previous_user_id=USER_ID)])

    changes = identity_changes(body)

    assert [(c.previous, c.current) for c in changes] == [
        (WA_ID, NEW_WA_ID),
        (USER_ID, NEW_USER_ID),
    ]


def test_a_changed_user_id_goes_from_the_previous_to_the_new_user_id() -> None:
    [change] = identity_changes(webhook(messages=[user_id_changed()]))

    assert (change.previous, change.current) == (USER_ID, NEW_USER_ID)
    assert change.kind == "user_changed_user_id"
    assert change.message_id == "wamid.SYS2"


def test_ordinary_messages_report_no_change() -> None:
    body = webhook(contacts=[contact()], messages=[text()], statuses=[status()])

    assert identity_changes(body) == []


# ---------------------------------------------------------------- inbound_replies


def test_a_reply_names_its_sender_by_number_and_user_id() -> None:
    [reply] = inbound_replies(webhook(contacts=[contact()], messages=[text()]))

    assert (reply.wa_id, reply.user_id, reply.texts) == (WA_ID, USER_ID, ("STOP",))


def test_a_user_id_only_reply_takes_the_single_contacts_user_id() -> None:
    body = webhook(contacts=[contact(wa_id=None)], messages=[text(sender=None, user_id=None)])

    [reply] = inbound_replies(body)

    assert reply.wa_id is None
    assert reply.user_id == USER_ID


def test_with_several_contacts_no_contact_is_taken_for_the_sender() -> None:
    body = webhook(
        contacts=[contact(), contact(NEW_WA_ID, NEW_USER_ID)],
        messages=[text(sender=None, user_id=None)],
    )

    [reply] = inbound_replies(body)

    assert (reply.wa_id, reply.user_id) == (None, None)


def test_system_messages_are_no_replies() -> None:
    body = webhook(messages=[number_changed(), user_id_changed(), text(message_id="wamid.B")])

    assert [r.message_id for r in inbound_replies(body)] == ["wamid.B"]


def test_a_stop_written_in_a_group_is_still_its_senders_reply() -> None:
    body = webhook(contacts=[contact()], messages=[text("STOP", group_id=GROUP_ID)])

    [reply] = inbound_replies(body)
    subject = reply_subject(reply)
    effects = reply_effects(reply, PHONE, RECEIVED, DEFAULT_KEYWORDS)

    assert body.entry[0].changes[0].value is not None
    assert body.entry[0].changes[0].value.messages[0].group_id == GROUP_ID
    assert subject == PHONE
    assert effects.event is not None
    assert effects.event.type is EventType.OPTED_OUT
    assert effects.event.subject == PHONE


# ---------------------------------------------------------------- link_event


def _link(
    wa_id: str = WA_ID, user_id: str = USER_ID, where: str = "messages:wamid.A"
) -> IdentityLink:
    return IdentityLink(wa_id=wa_id, user_id=user_id, seen_at=SENT, where=where)


def test_a_link_becomes_an_identity_linked_event_keyed_by_the_normalised_number() -> None:
    event = link_event(_link(), RECEIVED)

    assert event is not None
    assert event.type is EventType.IDENTITY_LINKED
    assert (event.subject, event.linked, event.previous) == (PHONE, USER_ID, None)
    assert event.source == "whatsapp_webhook"
    assert event.occurred_at == END_OF_SENT_SECOND
    assert event.evidence == {"webhook": "messages:wamid.A"}


@pytest.mark.parametrize(
    "seen_at",
    [None, RECEIVED + timedelta(hours=1), RECEIVED, RECEIVED - timedelta(milliseconds=500)],
    ids=["undated", "future", "at-receipt", "in-the-second-before-receipt"],
)
def test_a_link_counts_no_later_than_its_receipt(seen_at: datetime | None) -> None:
    link = IdentityLink(wa_id=WA_ID, user_id=USER_ID, seen_at=seen_at, where="contacts")

    event = link_event(link, RECEIVED)

    assert event is not None
    assert event.occurred_at == RECEIVED


def test_the_same_webhook_item_gives_the_same_link_event_id_and_another_item_another() -> None:
    first = link_event(_link(), RECEIVED)
    again = link_event(_link(), RECEIVED + timedelta(minutes=5))
    other = link_event(_link(where="messages:wamid.B"), RECEIVED)

    assert first is not None and again is not None and other is not None
    assert first.event_id == again.event_id != other.event_id
    assert is_redelivery(first, False, again, False)


def test_a_contact_pairing_received_again_is_a_redelivery_or_another_event() -> None:
    link = IdentityLink(wa_id=WA_ID, user_id=USER_ID, seen_at=None, where="contacts")

    first = link_event(link, RECEIVED)
    again = link_event(link, RECEIVED + timedelta(seconds=30))

    assert first is not None and again is not None
    assert first.event_id != again.event_id or is_redelivery(first, False, again, False)


def test_the_statuses_of_one_message_pair_alike_or_as_distinct_events() -> None:
    body_sent = webhook(statuses=[status(state="sent")])
    later = {**status(state="read"), "timestamp": str(int(STAMP) + 60)}
    body_read = webhook(statuses=[later])

    [sent] = [link_event(link, RECEIVED + timedelta(hours=1)) for link in identity_links(body_sent)]
    [read] = [link_event(link, RECEIVED + timedelta(hours=1)) for link in identity_links(body_read)]

    assert sent is not None and read is not None
    assert sent.event_id != read.event_id or is_redelivery(sent, False, read, False)


@pytest.mark.parametrize(
    ("wa_id", "user_id"),
    [
        ("12345", USER_ID),
        (WA_ID, "not a user id"),
        (USER_ID, USER_ID),
        (WA_ID, WA_ID),
        (USER_ID, WA_ID),
    ],
    ids=["bad-number", "bad-user-id", "user-id-as-number", "number-as-user-id", "swapped"],
)
def test_a_link_with_a_side_not_of_its_kind_gives_no_event(wa_id: str, user_id: str) -> None:
    assert link_event(_link(wa_id, user_id), RECEIVED) is None


# ---------------------------------------------------------------- change_event


def _change(previous: str, current: str, kind: str = "user_changed_number") -> IdentityChange:
    return IdentityChange(
        message_id="wamid.SYS1", kind=kind, previous=previous, current=current, changed_at=SENT
    )


def test_a_changed_number_becomes_an_identifier_changed_event_keyed_by_the_new_number() -> None:
    event = change_event(_change(WA_ID, NEW_WA_ID), RECEIVED)

    assert event is not None
    assert event.type is EventType.IDENTIFIER_CHANGED
    assert (event.subject, event.previous, event.linked) == (NEW_PHONE, PHONE, None)
    assert event.source == "whatsapp_webhook"
    assert event.occurred_at == END_OF_SENT_SECOND
    assert event.evidence == {"message_id": "wamid.SYS1", "system_type": "user_changed_number"}


def test_a_changed_user_id_becomes_an_identifier_changed_event_keyed_by_the_new_user_id() -> None:
    event = change_event(_change(USER_ID, NEW_USER_ID, "user_changed_user_id"), RECEIVED)

    assert event is not None
    assert (event.subject, event.previous) == (NEW_USER_ID, USER_ID)


def test_change_event_ids_are_the_same_for_the_same_message_and_differ_per_kind() -> None:
    number = change_event(_change(WA_ID, NEW_WA_ID), RECEIVED)
    again = change_event(_change(WA_ID, NEW_WA_ID), RECEIVED + timedelta(hours=1))
    user_id = change_event(_change(USER_ID, NEW_USER_ID), RECEIVED)

    assert number is not None and again is not None and user_id is not None
    assert number == again
    assert number.event_id != user_id.event_id


def test_one_system_message_changing_number_and_user_id_gives_two_events() -> None:
    body = webhook(messages=[number_changed(user_id=NEW_USER_ID, previous_user_id=USER_ID)])

    events = [change_event(c, RECEIVED) for c in identity_changes(body)]

    assert [(e.subject, e.previous) for e in events if e is not None] == [
        (NEW_PHONE, PHONE),
        (NEW_USER_ID, USER_ID),
    ]
    assert len({e.event_id for e in events if e is not None}) == 2


def test_an_unchanged_user_id_beside_a_changed_number_gives_no_event() -> None:
    changes = identity_changes(webhook(messages=[number_changed()]))

    events = [change_event(c, RECEIVED) for c in changes]

    assert [(e.subject, e.previous) for e in events if e is not None] == [(NEW_PHONE, PHONE)]


@pytest.mark.parametrize(
    ("previous", "current"),
    [
        ("12345", NEW_WA_ID),
        (WA_ID, "garbage"),
        (WA_ID, "+" + WA_ID),
        (WA_ID, NEW_USER_ID),
        (USER_ID, NEW_WA_ID),
    ],
    ids=["bad-previous", "bad-current", "same-number", "number-to-user-id", "user-id-to-number"],
)
def test_a_change_with_an_invalid_side_or_of_two_kinds_gives_no_event(
    previous: str, current: str
) -> None:
    assert change_event(_change(previous, current), RECEIVED) is None


# ---------------------------------------------------------------- LinksWritten


def _linked_event(wa_id: str = WA_ID, user_id: str = USER_ID) -> ConsentEvent:
    event = link_event(_link(wa_id, user_id), RECEIVED)
    assert event is not None
    return event


def test_a_link_is_new_until_it_is_remembered() -> None:
    written = LinksWritten()
    event = _linked_event()

    assert written.is_new(event)
    assert written.is_new(event)
    written.remember(event)
    assert not written.is_new(event)
    assert written.is_new(_linked_event(user_id=NEW_USER_ID))


def test_the_same_pairing_from_another_webhook_item_is_not_new() -> None:
    written = LinksWritten()
    written.remember(_linked_event())

    other_item = link_event(_link(where="statuses:wamid.OUT"), RECEIVED)

    assert other_item is not None
    assert not written.is_new(other_item)


def test_past_its_capacity_the_oldest_pairing_is_forgotten() -> None:
    written = LinksWritten(capacity=2)
    first, second, third = (_linked_event(user_id=u) for u in ("US.1", "US.2", "US.3"))

    for event in (first, second, third):
        written.remember(event)

    assert written.is_new(first)
    assert not written.is_new(second)
    assert not written.is_new(third)


def test_a_pairing_seen_again_is_kept_over_an_older_one() -> None:
    written = LinksWritten(capacity=2)
    first, second, third = (_linked_event(user_id=u) for u in ("US.1", "US.2", "US.3"))
    written.remember(first)
    written.remember(second)

    assert not written.is_new(first)
    written.remember(third)

    assert not written.is_new(first)
    assert written.is_new(second)


# ---------------------------------------------------------------- reply_subject


def _reply(wa_id: str | None, user_id: str | None) -> InboundReply:
    return InboundReply(
        message_id="wamid.A", wa_id=wa_id, user_id=user_id, sent_at=SENT, texts=("STOP",)
    )


@pytest.mark.parametrize(
    ("wa_id", "user_id", "subject"),
    [
        (WA_ID, USER_ID, PHONE),
        (WA_ID, None, PHONE),
        (None, USER_ID, USER_ID),
        ("12345", USER_ID, USER_ID),
        ("", f" {USER_ID} ", USER_ID),
        ("12345", "not a user id", None),
        (None, None, None),
    ],
    ids=[
        "both",
        "number-only",
        "user-id-only",
        "bad-number",
        "empty-number-padded-user-id",
        "neither-valid",
        "neither-given",
    ],
)
def test_the_reply_subject_is_the_number_else_the_user_id(
    wa_id: str | None, user_id: str | None, subject: str | None
) -> None:
    assert reply_subject(_reply(wa_id, user_id)) == subject


# ---------------------------------------------------------------- the second a number changes


@pytest.mark.parametrize(
    "stop_logged_first",
    [
        True,
        False,
    ],
    ids=["stop-logged-first", "change-logged-first"],
)
def test_a_stop_sent_in_the_second_the_number_changed_binds_the_person_who_sent_it(
    stop_logged_first: bool,
) -> None:
    change = change_event(_change(WA_ID, NEW_WA_ID), RECEIVED)
    stop = reply_effects(_reply(WA_ID, USER_ID), PHONE, RECEIVED, DEFAULT_KEYWORDS).event
    grant = granted(subject=PHONE, occurred_at=SENT - timedelta(days=1))
    assert change is not None and stop is not None

    records = arrived(grant, stop, change) if stop_logged_first else arrived(grant, change, stop)
    new = fold_people(records)[NEW_PHONE][0]

    assert new.opted_out
    assert new.opt_out_event_id == stop.event_id
