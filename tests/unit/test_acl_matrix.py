"""The access matrix of a secured cluster (shared/kafka/acl_matrix.py) reads as the
policy: who may write what is sent and decided, what other systems may write, and
that each service reads only what it consumes."""

import subprocess
from pathlib import Path

import pytest

from services.consent.settings import ConsentSettings
from services.dispatcher.settings import DispatcherSettings
from services.inbound.settings import InboundSettings
from shared.kafka.acl_matrix import MATRIX, Access, Operation, Pattern, Resource, grants, writers
from shared.kafka.topic_specs import topic_specs
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

SERVICES = ("inbound", "consent", "dispatcher")
# Where the local secured Kafka's SCRAM users are listed.
LIB_SH = Path(__file__).resolve().parents[2] / "deploy" / "local" / "lib.sh"


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
    assert MATRIX["audit"] == Access(reads=(CONSENT_EVENTS, MESSAGES_REQUESTS, MESSAGES_DECISIONS))


@pytest.mark.parametrize("topic", CONSUMED)
def test_a_dead_letter_is_written_by_the_services_that_consume_its_topic(topic: str) -> None:
    consumers = {name for name in SERVICES if topic in MATRIX[name].reads}
    assert consumers
    assert writers(dlq(topic)) == consumers


def test_only_the_dispatcher_has_transactional_ids() -> None:
    transactional = [g for g in grants() if g.resource is Resource.TRANSACTIONAL_ID]
    assert [(g.principal, g.name, g.pattern, g.operation) for g in transactional] == [
        ("User:dispatcher", "dispatcher-", Pattern.PREFIXED, Operation.WRITE)
    ]


def test_the_groups_are_those_the_services_join() -> None:
    joined = {
        "inbound": {InboundSettings.model_fields["group_id"].default},
        "consent": {ConsentSettings.model_fields["group_id"].default},
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


def test_nobody_is_granted_more_than_read_write_or_describe() -> None:
    assert {g.operation for g in grants()} == {Operation.READ, Operation.WRITE, Operation.DESCRIBE}
    assert all(g.principal.removeprefix("User:") in MATRIX for g in grants())
