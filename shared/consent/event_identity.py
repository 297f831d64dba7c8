"""When a second record carries an event_id the log has already recorded: a
redelivery of the same event (a silent no-op), or another event reusing the id
(refused: an OptedOut that reuses a grant's id must never vanish unseen)."""

from shared.contract.events import ConsentEvent


def is_redelivery(
    first: ConsentEvent, first_clamped: bool, again: ConsentEvent, again_clamped: bool
) -> bool:
    """True when `again` is the same event as `first`. Both are as recorded, with
    occurred_at clamped to their own broker timestamps: when both were clamped,
    their original instants are unknown and only the other fields can differ."""
    if first_clamped and again_clamped:
        return first.model_copy(update={"occurred_at": again.occurred_at}) == again
    return first == again
