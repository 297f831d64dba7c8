"""Who may do what on a secured cluster (docs/security.md): one principal per service
and one for the producers of other systems, each allowed only what it does.

A principal is its SASL user name (`User:<name>`). The super user (`admin`, the
broker's `super.users`) provisions topics and these ACLs and needs none of its
own; anything not granted here is refused (`allow.everyone.if.no.acl.found=false`).

No principal is granted IdempotentWrite on the cluster: since Kafka 3.0 (KIP-679)
Write on any topic allows an idempotent producer. Read and Write each imply
Describe, on a topic, a group or a transactional id alike; none of them implies
DescribeConfigs, which only the dispatcher is granted, on the two topics whose
retention it checks at start.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

from shared.erasure.mode import BOUNDED_TOPICS
from shared.topics import (
    CONSENT_EVENTS,
    CONSENT_LEDGER,
    DECISIONS_LEDGER,
    MESSAGES_DECISIONS,
    MESSAGES_DEFERRED,
    MESSAGES_OUTBOUND,
    MESSAGES_REQUESTS,
    WHATSAPP_INBOUND,
    dlq,
)


class Resource(IntEnum):
    """Kafka's ResourceType codes."""

    TOPIC = 2
    GROUP = 3
    TRANSACTIONAL_ID = 5


class Operation(IntEnum):
    """Kafka's AclOperation codes (org.apache.kafka.common.acl.AclOperation; aiokafka
    has no enum of them, its ACL requests carry the bare code)."""

    READ = 3
    WRITE = 4
    DESCRIBE = 8
    DESCRIBE_CONFIGS = 10


class Pattern(IntEnum):
    """Kafka's PatternType codes."""

    LITERAL = 3
    PREFIXED = 4


@dataclass(frozen=True)
class Access:
    """What one principal does: the topics it consumes, produces to, or only asks the
    offsets of, the topics whose configs it reads, the consumer groups it commits in,
    its transactional ids' prefix."""

    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    describes: tuple[str, ...] = ()
    describes_configs: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    transactional_id_prefix: str | None = None


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL, from any host."""

    principal: str
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation


# The groups are the services' defaults (INBOUND_GROUP_ID, CONSENT_GROUP_ID,
# DISPATCHER_GROUP_ID, DISPATCHER_SENDER_GROUP_ID): a deployment that renames
# one renames it here too. Each service writes the dead-letter topic of what it reads.
MATRIX: Mapping[str, Access] = {
    # Webhooks in; the events and confirmation requests their replies make.
    "inbound": Access(
        reads=(WHATSAPP_INBOUND,),
        writes=(WHATSAPP_INBOUND, dlq(WHATSAPP_INBOUND), CONSENT_EVENTS, MESSAGES_REQUESTS),
        groups=("inbound",),
    ),
    # The projector, and the rebuild, which reads the log without a group; the API
    # and `make erase` record erasure requests on the log. Its ledger writers copy the
    # log and the decisions into the ledgers in transactions (offsets committed in
    # them), reading each ledger's tail for its chain.
    "consent": Access(
        reads=(CONSENT_EVENTS, MESSAGES_DECISIONS, CONSENT_LEDGER, DECISIONS_LEDGER),
        writes=(CONSENT_EVENTS, dlq(CONSENT_EVENTS), CONSENT_LEDGER, DECISIONS_LEDGER),
        # In ERASURE_MODE it checks at start that every topic holding personal data
        # in clear keeps it no longer than the erasure deadline allows.
        describes_configs=BOUNDED_TOPICS,
        groups=("consent-projector", "consent-ledger", "consent-ledger-decisions"),
        transactional_id_prefix="consent-ledger",
    ),
    # The gate decides in a transaction (its offsets committed in it); the fence asks
    # consent.events.v1 for its end offsets; the optional sender reads outbound and
    # records a platform's refusal as a consent event. At start it reads the
    # retention.ms of the gate's topics (DescribeConfigs) to check its horizon
    # (services/dispatcher/retention/topics.py).
    "dispatcher": Access(
        reads=(MESSAGES_REQUESTS, MESSAGES_DEFERRED, MESSAGES_OUTBOUND),
        writes=(
            MESSAGES_OUTBOUND,
            MESSAGES_DECISIONS,
            MESSAGES_DEFERRED,
            CONSENT_EVENTS,
            dlq(MESSAGES_REQUESTS),
            dlq(MESSAGES_DEFERRED),
            dlq(MESSAGES_OUTBOUND),
        ),
        describes=(CONSENT_EVENTS,),
        describes_configs=(MESSAGES_REQUESTS, MESSAGES_DEFERRED),
        groups=("dispatcher", "dispatcher-sender"),
        transactional_id_prefix="dispatcher-",
    ),
    # Replays the log between offsets, without a group, or the ledgers.
    "audit": Access(
        reads=(
            CONSENT_EVENTS,
            MESSAGES_REQUESTS,
            MESSAGES_DECISIONS,
            CONSENT_LEDGER,
            DECISIONS_LEDGER,
        )
    ),
    # Other systems: consent they collected, and what they want sent.
    "producer": Access(writes=(CONSENT_EVENTS, MESSAGES_REQUESTS)),
    # The contract's "any gateway" that forwards webhooks: the topic inbound reads, and
    # nothing else. Under INBOUND_TOPIC_TRUST=meta_signed it must forward Meta's
    # X-Hub-Signature-256 as the record's header, or only its opt-outs count.
    "gateway": Access(writes=(WHATSAPP_INBOUND,)),
}


def _allowed(access: Access) -> list[tuple[Resource, str, Pattern, Operation]]:
    literal = Pattern.LITERAL
    allowed = [(Resource.TOPIC, t, literal, Operation.READ) for t in access.reads]
    allowed += [(Resource.TOPIC, t, literal, Operation.WRITE) for t in access.writes]
    allowed += [(Resource.TOPIC, t, literal, Operation.DESCRIBE) for t in access.describes]
    allowed += [
        (Resource.TOPIC, t, literal, Operation.DESCRIBE_CONFIGS) for t in access.describes_configs
    ]
    allowed += [(Resource.GROUP, g, literal, Operation.READ) for g in access.groups]
    if access.transactional_id_prefix is not None:
        prefix = access.transactional_id_prefix
        allowed.append((Resource.TRANSACTIONAL_ID, prefix, Pattern.PREFIXED, Operation.WRITE))
    return allowed


def grants(matrix: Mapping[str, Access] = MATRIX) -> list[Grant]:
    """Returns every ACL the matrix asks for, sorted."""
    found = {
        Grant(f"User:{name}", *allowed)
        for name, access in matrix.items()
        for allowed in _allowed(access)
    }
    return sorted(found)


def writers(topic: str, matrix: Mapping[str, Access] = MATRIX) -> set[str]:
    """Names the principals allowed to write `topic`."""
    return {name for name, access in matrix.items() if topic in access.writes}
