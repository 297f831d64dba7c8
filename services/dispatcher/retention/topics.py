"""Checks the horizon against the retention the brokers apply to the gate's topics, at
start: the dispatcher refuses to start on a horizon that a topic outlives."""

from collections.abc import Sequence

import structlog

from services.dispatcher.retention.horizon import HorizonTooShortError, retention_refusal
from shared.kafka.topic_retention import TopicConfigNotAuthorizedError, retention_ms

log = structlog.get_logger(__name__)


async def require_horizon(bootstrap: str, horizon_days: int, topics: Sequence[str]) -> None:
    """Raises HorizonTooShortError, naming the figures, when a topic keeps its records
    longer than `horizon_days`. A principal refused DescribeConfigs (a secured cluster
    whose ACLs predate this check) starts with a warning: the check cannot be made,
    which is not a horizon known to be too short."""
    try:
        retentions = await retention_ms(bootstrap, topics)
    except TopicConfigNotAuthorizedError as exc:
        log.warning(
            "the horizon cannot be checked against the topics' retention",
            reason=str(exc),
            fix="allow this principal DescribeConfigs on " + ", ".join(topics),
            horizon_days=horizon_days,
        )
        return
    if missing := [t for t in topics if t not in retentions]:
        # Nothing to redeliver yet; the gate waits for them to be provisioned.
        log.warning("topics not found, their retention not checked", topics=missing)
    refusal = retention_refusal(horizon_days, retentions)
    if refusal is not None:
        raise HorizonTooShortError(refusal)
