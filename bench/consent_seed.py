"""A consent projection to decide against: subjects with a mix of consent, written
through the projector's own store (events, folded subjects, one transaction per chunk)."""

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from services.consent.store import ConsentStore
from shared.consent.state import LoggedEvent
from shared.contract.events import ConsentEvent
from shared.db.pool import open_pool
from tests.support.signing import ERASURE_INDEX

# Not a topic anyone consumes: the seed's rows are tracked under it, so the
# private projection's tracking of the (private) consent log stays untouched.
SEED_TOPIC = "bench.seed"
GRANTED_PURPOSES = ("event_reminder", "registration_confirmation")


class Consent(StrEnum):
    GRANTED = "granted"  # half the recipients
    OPTED_OUT = "opted_out"  # granted, then opted out: a quarter
    NEVER_SEEN = "never_seen"  # no event at all: a quarter


def phones(count: int, start: int = 0) -> list[str]:
    """Distinct valid Russian mobile numbers (7919 is prime to 10**7: no repeats)."""
    return [f"+7916{(i * 7919) % 10_000_000:07d}" for i in range(start, start + count)]


def consent_of(index: int) -> Consent:
    return (Consent.GRANTED, Consent.GRANTED, Consent.OPTED_OUT, Consent.NEVER_SEEN)[index % 4]


def _events(subject: str, consent: Consent, now: datetime) -> list[dict[str, Any]]:
    if consent is Consent.NEVER_SEEN:
        return []
    granted = {
        "event_id": f"seed-grant-{subject}",
        "type": "ConsentGranted",
        "subject": subject,
        "occurred_at": (now - timedelta(days=2)).isoformat(),
        "source": "event_registration",
        "purposes": list(GRANTED_PURPOSES),
        "evidence": {"registration_id": "R-1042"},
    }
    if consent is Consent.GRANTED:
        return [granted]
    opted_out = {
        "event_id": f"seed-stop-{subject}",
        "type": "OptedOut",
        "subject": subject,
        "occurred_at": (now - timedelta(days=1)).isoformat(),
        "source": "whatsapp_reply",
        "evidence": {"message_id": "wamid.bench", "text": "STOP", "keyword": "STOP"},
    }
    return [granted, opted_out]


async def seed_subjects(
    database_url: str, subjects: Sequence[str], chunk: int = 5000
) -> Counter[str]:
    """Returns how many subjects got each kind of consent."""
    now = datetime.now(UTC)
    kinds: Counter[str] = Counter()
    logged: list[LoggedEvent] = []
    for index, subject in enumerate(subjects):
        consent = consent_of(index)
        kinds[consent] += 1
        for body in _events(subject, consent, now):
            event = ConsentEvent.model_validate(body)
            logged.append(LoggedEvent.from_log(event, now, 0, len(logged)))
    pool = await open_pool(database_url, max_size=2)
    try:
        store = ConsentStore(pool, ERASURE_INDEX)
        for start in range(0, len(logged), chunk):
            part = logged[start : start + chunk]
            await store.apply(SEED_TOPIC, part, {0: part[-1].offset + 1})
        await pool.execute("ANALYZE")
    finally:
        await pool.close()
    return kinds
