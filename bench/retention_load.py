"""What the retention benchmark writes: a simulated day of the gate's decisions, as the
gate stores them (the decision as published, the Cloud API body of a dispatch), by
COPY into dispatcher.decisions, the day's rows spread over its 24 hours."""

import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

from services.dispatcher.gate.store import DecisionRow
from shared.db.migrate import DEFAULT_ROOT

DAY = timedelta(days=1)
FULL_DAY = 86_400_000  # decisions a day at Meta's ceiling, 1,000 messages a second
_COLUMNS = (
    "request_id",
    "recipient",
    "purpose",
    "decision",
    "reason",
    "consent_event_id",
    "decided_at",
    "source_partition",
    "source_offset",
    "decision_json",
    "outbound_json",
    "source_topic",
)
# Seven in ten dispatched (they count toward the cap), the rest dropped for a reason.
_VERDICTS = (("dispatched", "consented"),) * 7 + (
    ("dropped", "no_consent"),
    ("dropped", "opted_out"),
    ("dropped", "frequency_capped"),
)
_BODY = "Reminder: the workshop starts at 10:00. Reply STOP to unsubscribe."


@dataclass(frozen=True)
class SimulatedDays:
    """The simulated calendar: day n starts `n` days after `start`, a UTC midnight."""

    start: datetime
    rows_per_day: int
    recipients: list[str]

    def midnight(self, day: int) -> datetime:
        return self.start + day * DAY

    @staticmethod
    def request_id(day: int, i: int) -> str:
        return f"req-{day}-{i}"


def _record(days: SimulatedDays, day: int, i: int, rng: Random) -> tuple[Any, ...]:
    request_id = days.request_id(day, i)
    recipient = days.recipients[rng.randrange(len(days.recipients))]
    decided_at = days.midnight(day) + DAY * (i / days.rows_per_day)
    decision, reason = _VERDICTS[rng.randrange(len(_VERDICTS))]
    dispatched = decision == "dispatched"
    published = (
        f'{{"request_id": "{request_id}", "recipient": "{recipient}", '
        f'"purpose": "event_reminder", "decision": "{decision}", "reason": "{reason}", '
        f'"consent_event_id": "grant-{i % 9973}", "decided_at": "{decided_at.isoformat()}", '
        f'"fence": {{"0": {i}, "1": {i + 1}, "2": {i + 2}}}}}'
    )
    outbound = (
        f'{{"messaging_product": "whatsapp", "to": "{recipient}", "type": "text", '
        f'"text": {{"body": "{_BODY}"}}}}'
        if dispatched
        else None
    )
    return (
        request_id,
        recipient,
        "event_reminder",
        decision,
        reason,
        f"grant-{i % 9973}",
        decided_at,
        i % 3,
        i,
        published,
        outbound,
        "messages.requests.v1",
    )


async def copy_day(conn: Any, days: SimulatedDays, day: int, seed: int = 11) -> None:
    """Writes simulated day `day`'s decisions, in decided_at order as the gate would."""
    rng = Random(seed + day)
    records = [_record(days, day, i, rng) for i in range(days.rows_per_day)]
    await conn.copy_records_to_table(
        "decisions", schema_name="dispatcher", columns=_COLUMNS, records=records
    )


def new_decisions(
    days: SimulatedDays, day: int, batch: int, batches: int
) -> list[list[DecisionRow]]:
    """Batches of decisions the gate records as `day` ends, request_ids never seen."""
    decided_at = days.midnight(day) + DAY - timedelta(seconds=1)
    return [
        [
            DecisionRow(
                request_id=f"gate-{day}-{b}-{i}",
                recipient=days.recipients[i % len(days.recipients)],
                purpose="event_reminder",
                decision="dropped",
                reason="no_consent",
                consent_event_id=None,
                opt_out_event_id=None,
                decided_at=decided_at,
                source_partition=0,
                source_offset=i,
                decision_json=b'{"decision": "dropped"}',
                outbound_json=None,
                source_topic="messages.requests.v1",
            )
            for i in range(batch)
        ]
        for b in range(batches)
    ]


def migrations_before_day_partitions(scratch: Path) -> Path:
    """deploy/migrations as a deployment had them before the day partitions: every file
    but dispatcher/005, copied under `scratch`."""
    root = scratch / "migrations"
    shutil.copytree(DEFAULT_ROOT, root)
    (root / "dispatcher" / "005_day_partitions.sql").unlink()
    return root
