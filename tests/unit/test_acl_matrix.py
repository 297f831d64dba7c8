"""The access matrix of a secured cluster (shared/kafka/acl_matrix.py) reads as the
policy: who may write what is sent and decided, what other systems may write, and
that each service reads only what it consumes."""

import re
import subprocess
from pathlib import Path

import pytest

from services.consent.settings import ConsentSettings
from services.dispatcher.settings import DispatcherSettings
from services.inbound.settings import InboundSettings
from shared.erasure.mode import BOUNDED_TOPICS
from shared.kafka.acl_matrix import (
    MATRIX,
    Access,
    Grant,
    Operation,
    Pattern,
    Resource,
    grants,
    writers,
)
from shared.kafka.acls import Acl
from shared.kafka.topic_specs import topic_specs
from shared.topics import (
    CONSENT_EVENTS,
    CONSUMED,
    LEDGERS,
    MESSAGES_DECISIONS,
    MESSAGES_DEFERRED,
    MESSAGES_OUTBOUND,
    MESSAGES_REQUESTS,
    PREFIX,
    WHATSAPP_INBOUND,
    dlq,
)

SERVICES = ("inbound", "consent", "dispatcher")
ROOT = Path(__file__).resolve().parents[2]
# Where the local secured Kafka's SCRAM users are listed.
LIB_SH = ROOT / "deploy" / "local" / "lib.sh"
SECURITY_MD = ROOT / "docs" / "security.md"


@pytest.mark.parametrize("topic", [MESSAGES_OUTBOUND, MESSAGES_DECISIONS, MESSAGES_DEFERRED])
def test_only_the_dispatcher_writes_what_is_sent_and_decided(topic: str) -> None:
    assert writers(topic) == {"dispatcher"}


def test_other_systems_write_consent_and_requests_and_nothing_else() -> None:
    assert MATRIX["producer"] == Access(writes=(CONSENT_EVENTS, MESSAGES_REQUESTS))


def test_webhooks_enter_through_inbound_or_a_gateway_alone() -> None:
    assert writers(WHATSAPP_INBOUND) == {"inbound", "gateway"}


def test_a_gateway_writes_webhooks_and_nothing_else() -> None:
    assert MATRIX["gateway"] == Access(writes=(WHATSAPP_INBOUND,))


def test_the_local_secured_kafka_has_a_user_for_every_principal() -> None:
    listed = subprocess.run(
        ["bash", "-c", 'source "$0" && printf "%s\\n" "${KAFKA_PRINCIPALS[@]}"', str(LIB_SH)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert sorted(listed.stdout.split()) == sorted(["admin", *MATRIX])


def test_the_audit_only_reads_the_log_it_replays() -> None:
    replayed = (CONSENT_EVENTS, MESSAGES_REQUESTS, MESSAGES_DECISIONS, *LEDGERS)
    assert MATRIX["audit"] == Access(reads=replayed)


@pytest.mark.parametrize("topic", CONSUMED)
def test_a_dead_letter_is_written_by_the_services_that_consume_its_topic(topic: str) -> None:
    consumers = {name for name in SERVICES if topic in MATRIX[name].reads}
    assert consumers
    assert writers(dlq(topic)) == consumers


def test_only_the_gate_and_the_ledger_writers_have_transactional_ids() -> None:
    transactional = [g for g in grants() if g.resource is Resource.TRANSACTIONAL_ID]
    assert [(g.principal, g.name, g.pattern, g.operation) for g in transactional] == [
        ("User:consent", "consent-ledger", Pattern.PREFIXED, Operation.WRITE),
        ("User:dispatcher", "dispatcher-", Pattern.PREFIXED, Operation.WRITE),
    ]
    # The ledger writers' ids are their groups' names and a partition.
    for group in ("ledger_group_id", "decisions_ledger_group_id"):
        assert ConsentSettings.model_fields[group].default.startswith("consent-ledger")


def test_the_groups_are_those_the_services_join() -> None:
    joined = {
        "inbound": {InboundSettings.model_fields["group_id"].default},
        "consent": {
            ConsentSettings.model_fields[name].default
            for name in ("group_id", "ledger_group_id", "decisions_ledger_group_id")
        },
        "dispatcher": {
            DispatcherSettings.model_fields["group_id"].default,
            DispatcherSettings.model_fields["sender_group_id"].default,
        },
        "audit": set(),
        "producer": set(),
        "gateway": set(),
    }
    assert {name: set(access.groups) for name, access in MATRIX.items()} == joined


def test_every_topic_of_the_matrix_is_provisioned() -> None:
    provisioned = {spec.name for spec in topic_specs()}
    named = {g.name for g in grants() if g.resource is Resource.TOPIC}
    assert named <= provisioned


def test_nobody_is_granted_more_than_read_write_describe_or_describe_configs() -> None:
    assert {g.operation for g in grants()} == {
        Operation.READ,
        Operation.WRITE,
        Operation.DESCRIBE,
        Operation.DESCRIBE_CONFIGS,
    }
    assert all(g.principal.removeprefix("User:") in MATRIX for g in grants())


def test_the_operations_carry_kafkas_acl_operation_codes() -> None:
    """org.apache.kafka.common.acl.AclOperation: the broker reads the bare code, so a
    wrong one would grant another operation than the one named."""
    assert {op.name: op.value for op in Operation} == {
        "READ": 3,
        "WRITE": 4,
        "DESCRIBE": 8,
        "DESCRIBE_CONFIGS": 10,
    }


def test_only_the_start_checks_read_topic_configs() -> None:
    """The dispatcher's horizon check (services/dispatcher/retention/topics.py) reads the
    retention.ms of the two topics the gate reads; the consent service's erasure-mode
    check reads those of every topic that holds personal data in clear."""
    described = [g for g in grants() if g.operation is Operation.DESCRIBE_CONFIGS]
    dispatcher = [g for g in described if g.principal == "User:dispatcher"]
    assert dispatcher == sorted(
        Grant("User:dispatcher", Resource.TOPIC, topic, Pattern.LITERAL, Operation.DESCRIBE_CONFIGS)
        for topic in (MESSAGES_REQUESTS, MESSAGES_DEFERRED)
    )
    consent = {g.name for g in described if g.principal == "User:consent"}
    assert consent == set(BOUNDED_TOPICS)
    assert not set(LEDGERS) & consent
    assert {g.principal for g in described} == {"User:consent", "User:dispatcher"}
    described = dispatcher
    assert set(MATRIX["dispatcher"].describes_configs) <= set(MATRIX["dispatcher"].reads)
    assert str(Acl.of(described[0])) == (
        f"User:dispatcher allow DESCRIBE_CONFIGS on TOPIC {MESSAGES_DEFERRED}"
    )


def _security_md_table() -> dict[str, list[str]]:
    """docs/security.md's Kafka table: each principal's cells (reads, writes, other)."""
    section = SECURITY_MD.read_text().split("## Kafka: one principal per service", 1)[1]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        if match := re.fullmatch(r"\| `([a-z]+)`[^|]*\|(.*)\|", line):
            rows[match[1]] = [cell.strip() for cell in match[2].split("|")]
    return rows


def _topics_in(text: str) -> set[str]:
    provisioned = {spec.name.removeprefix(PREFIX) for spec in topic_specs()}
    return {PREFIX + name for name in re.findall(r"`([^`]+)`", text) if name in provisioned}


def _topics_after(cell: str, operation: str) -> set[str]:
    """The topics of the `;`-separated parts of `cell` that begin with `operation on`."""
    parts = (part.strip() for part in cell.split(";"))
    return set().union(*(_topics_in(p) for p in parts if p.startswith(f"{operation} on ")))


@pytest.mark.parametrize("principal", sorted(MATRIX))
def test_the_security_docs_table_is_the_matrix(principal: str) -> None:
    table = _security_md_table()
    assert set(table) == {"admin", *MATRIX}
    reads, writes, other = table[principal]
    access = MATRIX[principal]
    assert _topics_in(reads) == set(access.reads)
    named = set(re.findall(r"`([^`]+)`", reads))
    assert {n for n in named if PREFIX + n not in _topics_in(reads)} == set(access.groups)
    assert _topics_in(writes) == set(access.writes)
    assert _topics_after(other, "Describe") == set(access.describes)
    assert _topics_after(other, "DescribeConfigs") == set(access.describes_configs)
    prefix = access.transactional_id_prefix
    assert ("transactional ids" in other) == (prefix is not None)
    if prefix is not None:
        assert f"`{prefix}*` (prefixed)" in other
