"""What a reply means, as values: the event, the confirmation, their derived ids."""

from datetime import UTC, datetime, timedelta

from hypothesis import example, given
from hypothesis import strategies as st

from services.inbound.domain.classifier import DEFAULT_KEYWORDS
from services.inbound.domain.replies import reply_effects
from shared.consent.fold import fold_subject
from shared.consent.state import LoggedEvent
from shared.contract.events import ConsentEvent, EventType
from shared.contract.purposes import Purpose
from shared.contract.webhook import InboundReply

SUBJECT = "+79161234567"
RECEIVED = datetime(2026, 11, 27, 10, 0, 5, tzinfo=UTC)
SENT = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)


def reply(*texts: str, message_id: str = "wamid.HBgLNzkxNjEyMzQ1NjcVAgASGBQzQTdE") -> InboundReply:
    return InboundReply(
        message_id=message_id, wa_id="79161234567", user_id=None, sent_at=SENT, texts=texts
    )


def test_stop_becomes_one_opt_out_and_its_confirmation_in_english() -> None:
    effects = reply_effects(reply("STOP"), SUBJECT, RECEIVED, DEFAULT_KEYWORDS)
    assert effects.event is not None
    assert effects.event.type is EventType.OPTED_OUT
    # the end of the second WhatsApp stamped it with (ties go to the opt-out)
    assert effects.event.occurred_at == SENT + timedelta(seconds=1, microseconds=-1)
    assert effects.event.evidence == {
        "message_id": reply("x").message_id,
        "text": "STOP",
        "keyword": "STOP",
        "language": "en",
    }
    assert effects.confirmation is not None
    assert effects.confirmation.purpose == "opt_out_confirmation"
    assert effects.confirmation.opt_out_event_id == effects.event.event_id
    assert "unsubscribed" in effects.confirmation.message["text"]["body"]


def test_russian_stop_is_confirmed_in_russian() -> None:
    effects = reply_effects(reply("стоп!"), SUBJECT, RECEIVED, DEFAULT_KEYWORDS)
    assert effects.confirmation is not None
    assert "отписались" in effects.confirmation.message["text"]["body"]


def test_ids_derive_from_the_message_id_so_a_redelivery_repeats_them() -> None:
    first = reply_effects(reply("STOP"), SUBJECT, RECEIVED, DEFAULT_KEYWORDS)
    again = reply_effects(reply("STOP"), SUBJECT, datetime.now(UTC), DEFAULT_KEYWORDS)
    other = reply_effects(
        reply("STOP", message_id="wamid.other"), SUBJECT, RECEIVED, DEFAULT_KEYWORDS
    )
    assert first.event and again.event and other.event
    assert first.event.event_id == again.event.event_id != other.event.event_id
    assert first.confirmation and again.confirmation
    assert first.confirmation.request_id == again.confirmation.request_id


def test_start_becomes_an_opt_in_without_confirmation() -> None:
    effects = reply_effects(reply("СТАРТ"), SUBJECT, RECEIVED, DEFAULT_KEYWORDS)
    assert effects.event is not None
    assert effects.event.type is EventType.OPTED_IN
    assert effects.confirmation is None


def test_a_button_whose_payload_or_title_is_an_opt_out_opts_out() -> None:
    by_title = reply_effects(reply("BTN_7", "Unsubscribe"), SUBJECT, RECEIVED, DEFAULT_KEYWORDS)
    by_payload = reply_effects(reply("STOP", "Не сейчас"), SUBJECT, RECEIVED, DEFAULT_KEYWORDS)
    assert by_title.event and by_title.event.type is EventType.OPTED_OUT
    assert by_payload.event and by_payload.event.type is EventType.OPTED_OUT


def test_anything_else_produces_no_event() -> None:
    effects = reply_effects(reply("which bus stop?"), SUBJECT, RECEIVED, DEFAULT_KEYWORDS)
    assert effects.event is None
    assert effects.confirmation is None


def test_a_stop_outranks_a_grant_recorded_later_in_the_same_second() -> None:
    """WhatsApp timestamps are whole seconds: a STOP sent at 10:00:00 and a grant
    recorded at 10:00:00.5 are ambiguous, and the opt-out must win."""
    grant_time = SENT + timedelta(milliseconds=500)
    effects = reply_effects(reply("STOP"), SUBJECT, SENT + timedelta(seconds=2), DEFAULT_KEYWORDS)
    assert effects.event is not None
    grant = ConsentEvent(
        event_id="g",
        type=EventType.CONSENT_GRANTED,
        subject=SUBJECT,
        occurred_at=grant_time,
        source="event_registration",
        purposes=(Purpose.EVENT_REMINDER,),
        evidence={"registration_id": "R-1"},
    )
    history = [
        LoggedEvent(event=grant, log_time=grant_time, partition=0, offset=0),
        LoggedEvent(
            event=effects.event, log_time=SENT + timedelta(seconds=2), partition=0, offset=1
        ),
    ]
    assert fold_subject(SUBJECT, history).opted_out


def test_a_reply_never_counts_from_later_than_it_was_received() -> None:
    received = SENT + timedelta(milliseconds=200)
    effects = reply_effects(reply("STOP"), SUBJECT, received, DEFAULT_KEYWORDS)
    assert effects.event is not None
    assert effects.event.occurred_at == received


@given(st.datetimes(timezones=st.just(UTC)) | st.none())
@example(datetime.fromtimestamp(253_402_300_799, UTC))  # "timestamp": "253402300799"
def test_any_stamp_the_webhook_carries_gives_a_moment_no_later_than_receipt(
    sent_at: datetime | None,
) -> None:
    """WhatsApp's stamp is the sender's word: 9999-12-31T23:59:59 included."""
    stamped = InboundReply(
        message_id="wamid.1", wa_id="79161234567", user_id=None, sent_at=sent_at, texts=("STOP",)
    )
    effects = reply_effects(stamped, SUBJECT, RECEIVED, DEFAULT_KEYWORDS)
    assert effects.event is not None
    assert effects.event.occurred_at <= RECEIVED
    if sent_at is not None and sent_at < RECEIVED - timedelta(seconds=1):
        assert effects.event.occurred_at == sent_at + timedelta(seconds=1, microseconds=-1)
