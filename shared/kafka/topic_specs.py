"""Lists the topics the system needs and the configs each must have (CONTRACT.md section 1)."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.erasure.mode import ErasureMode, bounded_retention_configs, erasure_mode
from shared.topics import ALL, CONSENT_EVENTS, CONSUMED, LEDGERS, dlq

# The source of truth is never compacted and never trimmed (CONTRACT.md section 1);
# its timestamps come from the broker's clock (ARCHITECTURE.md section 3).
# ERASURE_MODE=on bounds its retention.ms (shared/erasure/mode.py), since other
# systems write it in clear, and keeps the rest.
EVENT_LOG_CONFIGS: Mapping[str, str] = {
    "retention.ms": "-1",
    "retention.bytes": "-1",
    "cleanup.policy": "delete",
    "message.timestamp.type": "LogAppendTime",
}
# The ledgers are the durable truth once the input topics are bounded: never
# trimmed either.
LEDGER_CONFIGS: Mapping[str, str] = {
    "retention.ms": "-1",
    "retention.bytes": "-1",
    "cleanup.policy": "delete",
}
# A dead letter is the original record plus headers, so its topic takes larger
# records than the input topics (the broker's default, about 1 MiB): else the
# largest unusable records could never be dead-lettered, and a consumer would
# retry its batch for ever.
DLQ_MAX_MESSAGE_BYTES = 2 * 1024 * 1024
# A dead letter waits for an operator, however long that takes (but in
# ERASURE_MODE=on: it holds the rejected record raw, personal data in clear).
DLQ_CONFIGS: Mapping[str, str] = {
    "retention.ms": "-1",
    "max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES),
}


class ProvisioningError(Exception):
    """The cluster's topics cannot be made to match the contract."""


@dataclass(frozen=True)
class TopicSpec:
    """Names a topic, with the configs it must have."""

    name: str
    configs: Mapping[str, str] = field(default_factory=dict)


def replication_configs(replication_factor: int) -> dict[str, str]:
    """Returns what every topic needs so that an acknowledged record is never lost.

    Our producers write with acks=all: the leader acknowledges once every
    in-sync replica has the record, and refuses the write while fewer than
    `min.insync.replicas` are in sync. With RF 3 and min ISR 2 an acknowledged
    record is on at least two brokers, so it survives the loss of any one, and
    a second loss stops writes instead of acknowledging them on one broker.
    Without unclean election a replica that fell behind never becomes the
    leader and silently drops what it lacks."""
    return {
        "min.insync.replicas": str(max(1, replication_factor - 1)),
        "unclean.leader.election.enable": "false",
    }


def required_configs(spec: TopicSpec, replication_factor: int) -> dict[str, str]:
    """Returns the configs `spec`'s topic must have at that replication factor."""
    return {**spec.configs, **replication_configs(replication_factor)}


def topic_specs(mode: ErasureMode | None = None) -> list[TopicSpec]:
    """Lists every topic the system needs, with the configs it requires; `mode`
    (ERASURE_MODE's when None) `on` bounds the retention of every topic that holds
    personal data in clear, overriding what the contract's configs say of it."""
    bounded = (erasure_mode() if mode is None else mode) is ErasureMode.ON

    def spec(name: str, configs: Mapping[str, str]) -> TopicSpec:
        if not bounded:
            return TopicSpec(name, configs)
        return TopicSpec(name, {**configs, **bounded_retention_configs(name)})

    specs = [spec(t, EVENT_LOG_CONFIGS if t == CONSENT_EVENTS else {}) for t in ALL]
    specs += [spec(dlq(t), DLQ_CONFIGS) for t in CONSUMED]
    # Never trimmed in either mode: the ledgers hold personal fields sealed only.
    specs += [TopicSpec(t, LEDGER_CONFIGS) for t in LEDGERS]
    return specs
