"""ERASURE_MODE: the opt-in that bounds how long every topic holding personal data
in clear keeps it, so that an erasure is honoured within its deadline
(docs/erasure.md, sections 2 and 6): the table, the parsing and the start check's
refusal, without I/O (the brokers are read by shared/kafka/topic_retention.py).

CONTRACT.md promises that `consent.events.v1` is never trimmed, and other systems
write grants there in clear: no erasure can reach those records but their
expiry. So bounding it is a deployment's choice, `ERASURE_MODE=on`; `off` (the
default) leaves every topic as the contract has it."""

import os
from collections.abc import Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from shared.topics import (
    CONSENT_EVENTS,
    CONSUMED,
    MESSAGES_DECISIONS,
    MESSAGES_DEFERRED,
    MESSAGES_OUTBOUND,
    MESSAGES_REQUESTS,
    WHATSAPP_INBOUND,
    dlq,
)

VARIABLE: Final = "ERASURE_MODE"


class ErasureMode(StrEnum):
    OFF = "off"
    ON = "on"


class ErasureModeError(ValueError):
    """ERASURE_MODE holds something other than `off` or `on`."""


def parse_erasure_mode(raw: str | None) -> ErasureMode:
    """Returns the mode `raw` names; unset or blank is `off`. Anything else is refused
    rather than guessed: `true` or `1` read as `off` would leave a deployment that
    meant to bound its retentions keeping records for ever."""
    value = (raw or "").strip().lower()
    if not value:
        return ErasureMode.OFF
    try:
        return ErasureMode(value)
    except ValueError:
        raise ErasureModeError(
            f"{VARIABLE} must be 'off' (the default) or 'on', not {raw!r}"
        ) from None


def erasure_mode(environ: Mapping[str, str] | None = None) -> ErasureMode:
    """Returns the mode ERASURE_MODE sets in `environ` (the process's by default)."""
    return parse_erasure_mode((os.environ if environ is None else environ).get(VARIABLE))


# The deadline of docs/erasure.md: 152-FZ art. 21 gives 30 days to destroy the
# data once no other basis remains. A constant, not a setting: it is the law's
# figure, which no deployment may lengthen.
ERASURE_DEADLINE_DAYS: Final = 30
# What the brokers' figures leave out, and the deadline must still hold:
# - a broker deletes an expired segment at its next retention check
#   (log.retention.check.interval.ms, 5 minutes), the file a minute after
#   (file.delete.delay.ms), and only while it runs: a replica that was down
#   deletes its copy when it is back;
# - under CreateTime a producer whose clock runs ahead stamps records that expire
#   later, by up to message.timestamp.after.max.ms (an hour: erasure mode sets it);
# - the dispatcher's day partitions go up to a day past its horizon, dropped by an
#   hourly round that may fail and be retried.
# Minutes and hours, but for the dispatcher's day: two days hold them all with a day
# to spare for a broker or a maintenance round that was down. A wider margin would
# only shorten what an operator may keep.
RETENTION_MARGIN_DAYS: Final = 2
# The longest any clear copy may be kept: by a topic, retention.ms + segment.ms;
# by the dispatcher, DISPATCHER_HORIZON_DAYS.
MAX_KEPT_DAYS: Final = ERASURE_DEADLINE_DAYS - RETENTION_MARGIN_DAYS

DAY_MS: Final = 86_400_000
MAX_KEPT_MS: Final = MAX_KEPT_DAYS * DAY_MS
# Kafka deletes whole segments, once the newest record of one is older than
# retention.ms: a record is kept up to segment.ms past its retention. The brokers'
# default is 7 days; one day keeps the excess small.
SEGMENT_MS: Final = DAY_MS

# Days each topic holding personal data in clear keeps it in erasure mode
# (docs/erasure.md, section 2). The ledgers are not here: they hold personal fields
# sealed only, and stay the never-trimmed truth in both modes.
BOUNDED_RETENTION_DAYS: Final[Mapping[str, int]] = MappingProxyType(
    {
        # Inbound consumes a webhook within seconds; a week is for an outage.
        WHATSAPP_INBOUND: 7,
        # Three weeks for the projector, a rebuild or the ledger's migration to
        # read it; the ledger is then the truth.
        CONSENT_EVENTS: 21,
        # The dispatcher's default horizon: a request it could be handed again is
        # one whose decision it still remembers (docs/erasure.md, section 7).
        MESSAGES_REQUESTS: 7,
        MESSAGES_OUTBOUND: 7,
        MESSAGES_DEFERRED: 7,
        # The audit and operators read decisions; the decisions ledger keeps them.
        MESSAGES_DECISIONS: 21,
        # An operator's window to look at a dead letter.
        **{dlq(topic): 14 for topic in CONSUMED},
    }
)
BOUNDED_TOPICS: Final = tuple(BOUNDED_RETENTION_DAYS)

RETENTION_MS: Final = "retention.ms"
SEGMENT_MS_CONFIG: Final = "segment.ms"
CLEANUP_POLICY: Final = "cleanup.policy"
TIMESTAMP_TYPE: Final = "message.timestamp.type"
TIMESTAMP_AFTER_MAX_MS: Final = "message.timestamp.after.max.ms"
# Read at the check; the broker reports each one, set on the topic or inherited.
CHECKED_CONFIGS: Final = (
    RETENTION_MS,
    SEGMENT_MS_CONFIG,
    CLEANUP_POLICY,
    TIMESTAMP_TYPE,
    TIMESTAMP_AFTER_MAX_MS,
)
# Retention reckons from record timestamps, which under CreateTime are the
# producer's: a record stamped a year ahead would be kept a year longer. Kafka 4
# refuses records more than an hour ahead by default; Kafka 3 takes any, so erasure
# mode sets Kafka 4's hour on every bounded topic, and the check refuses more than a
# day, which the margin still absorbs.
TIMESTAMP_AHEAD_MS: Final = 3_600_000
MAX_TIMESTAMP_AHEAD_MS: Final = DAY_MS


def bounded_retention_configs(topic: str) -> dict[str, str]:
    """Returns the configs erasure mode requires of `topic` ({} for a topic it leaves
    as it is: a ledger)."""
    days = BOUNDED_RETENTION_DAYS.get(topic)
    if days is None:
        return {}
    return {
        RETENTION_MS: str(days * DAY_MS),
        SEGMENT_MS_CONFIG: str(SEGMENT_MS),
        TIMESTAMP_AFTER_MAX_MS: str(TIMESTAMP_AHEAD_MS),
    }


class UnboundedRetentionError(RuntimeError):
    """A topic keeps personal data in clear longer than an erasure's deadline allows."""


def _days(ms: int) -> str:
    # Figures in milliseconds say "ms": the log's phone masking keeps them then.
    return f"{ms} ms ({ms / DAY_MS:g} days)"


def _problem(topic: str, configs: Mapping[str, str | None]) -> str | None:
    try:
        retention = int(configs.get(RETENTION_MS) or "")
        segment = int(configs.get(SEGMENT_MS_CONFIG) or "")
        # A broker older than Kafka 3.6 reports none: it has no such limit either.
        ahead = int(configs.get(TIMESTAMP_AFTER_MAX_MS) or str(2**63 - 1))
    except ValueError:
        return f"{topic} reports no usable retention.ms, segment.ms or timestamp bound"
    if "delete" not in (configs.get(CLEANUP_POLICY) or "delete").split(","):
        # Compaction alone keeps each key's latest record whatever retention.ms says.
        return (
            f"{topic} is compacted only (cleanup.policy={configs.get(CLEANUP_POLICY)}), "
            "so it keeps records for ever: add delete"
        )
    if retention < 0:
        return f"{topic} keeps its records for ever (retention.ms={retention})"
    if retention + segment > MAX_KEPT_MS:
        return (
            f"{topic} has retention.ms={_days(retention)} + segment.ms={_days(segment)}, "
            f"{_days(retention + segment)} in all"
        )
    # Under LogAppendTime the broker stamps every record itself.
    producers_clock = (configs.get(TIMESTAMP_TYPE) or "CreateTime") == "CreateTime"
    if producers_clock and ahead > MAX_TIMESTAMP_AHEAD_MS:
        return (
            f"{topic} takes records stamped up to {ahead} ms ahead of the broker's "
            "clock, which expire that much later "
            f"(message.timestamp.after.max.ms, at most {MAX_TIMESTAMP_AHEAD_MS} ms)"
        )
    return None


def bounded_retention_refusal(
    configs: Mapping[str, Mapping[str, str | None]], topics: Sequence[str]
) -> str | None:
    """Returns why `topics`, with `configs` as the brokers report them (topic ->
    config -> value; a topic left out does not exist), cannot be relied on to drop
    their records within the deadline, naming each offending topic and its figures;
    None when every one will."""
    problems = []
    for topic in sorted(set(topics)):
        if topic not in configs:
            # It holds nothing now, but a topic created later by another hand would
            # get whatever the brokers' defaults are: provision it first.
            problems.append(f"{topic} does not exist")
            continue
        problem = _problem(topic, configs[topic])
        if problem is not None:
            problems.append(problem)
    if not problems:
        return None
    return (
        f"{VARIABLE}=on promises an erasure within ERASURE_DEADLINE_DAYS="
        f"{ERASURE_DEADLINE_DAYS}, so every topic holding personal data in clear must "
        f"drop its records within {MAX_KEPT_DAYS} days (retention.ms + segment.ms at "
        f"most {MAX_KEPT_MS} ms, leaving {RETENTION_MARGIN_DAYS} days for the brokers): "
        + "; ".join(problems)
        + f". Provision the topics with {VARIABLE}=on (python -m shared.kafka.provision)"
        " or set those configs."
    )
