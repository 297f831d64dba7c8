"""Topic names: the contract's, or a whole prefixed copy for an isolated system."""

import subprocess
import sys

import shared.topics as topics


def test_the_contract_names_are_the_default() -> None:
    assert topics.ALL == (
        "whatsapp.inbound.v1",
        "consent.events.v1",
        "messages.requests.v1",
        "messages.outbound.v1",
        "messages.decisions.v1",
        "messages.deferred.v1",
    )
    assert topics.dlq(topics.CONSENT_EVENTS) == "consent.events.v1.dlq"


def test_a_prefix_renames_every_topic_and_its_dlq() -> None:
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import shared.topics as t; print(*t.ALL, t.dlq(t.MESSAGES_REQUESTS))",
        ],
        env={"KAFKA_TOPIC_PREFIX": "bench.1."},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert shown == [
        "bench.1.whatsapp.inbound.v1",
        "bench.1.consent.events.v1",
        "bench.1.messages.requests.v1",
        "bench.1.messages.outbound.v1",
        "bench.1.messages.decisions.v1",
        "bench.1.messages.deferred.v1",
        "bench.1.messages.requests.v1.dlq",
    ]
