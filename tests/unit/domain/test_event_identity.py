"""A second record with a recorded event_id: the same event again, or another
event reusing the id."""

from datetime import UTC, datetime, timedelta

from shared.consent.event_identity import is_redelivery
from shared.contract.events import ConsentEvent
from tests.support.records import consent_event, unique_phone

AT = datetime(2026, 11, 27, 10, tzinfo=UTC)


def grant(**fields: object) -> ConsentEvent:
    return ConsentEvent.model_validate(
        consent_event(unique_phone(), "ConsentGranted", event_id="e-1", **fields)
    )


def test_the_same_event_again_is_a_redelivery() -> None:
    first = grant(occurred_at=AT.isoformat())
    assert is_redelivery(first, False, first.model_copy(), False)


def test_another_type_under_the_same_id_is_a_conflict() -> None:
    first = grant(occurred_at=AT.isoformat())
    opted_out = first.model_copy(update={"type": "OptedOut", "source": "whatsapp_reply"})
    assert not is_redelivery(first, False, opted_out, False)


def test_other_purposes_or_evidence_are_a_conflict() -> None:
    first = grant(occurred_at=AT.isoformat())
    assert not is_redelivery(
        first, False, first.model_copy(update={"evidence": {"form": "other"}}), False
    )


def test_another_instant_is_a_conflict_unless_both_were_clamped() -> None:
    first = grant(occurred_at=AT.isoformat())
    later = first.model_copy(update={"occurred_at": AT + timedelta(seconds=5)})
    assert not is_redelivery(first, False, later, False)
    assert not is_redelivery(first, True, later, False)
    # Both ran ahead of their broker timestamps: what they said is unknown.
    assert is_redelivery(first, True, later, True)
