"""The benchmarks' private topics: created under the names their services use when
started with the run's KAFKA_TOPIC_PREFIX, and no service started without one."""

import subprocess
import sys
from pathlib import Path

from bench.dispatcher_setup import Topics
from bench.private import prefixed

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )


def _service_names(prefix: str) -> set[str]:
    """Every topic name, and its dead-letter companion, as a service started with
    KAFKA_TOPIC_PREFIX=prefix names it."""
    shown = _python(
        "import shared.topics as t; print(*t.ALL, *map(t.dlq, t.ALL))",
        {"KAFKA_TOPIC_PREFIX": prefix},
    )
    assert shown.returncode == 0, shown.stderr
    return set(shown.stdout.split())


def test_the_dispatcher_benchmark_creates_the_topics_its_dispatcher_uses() -> None:
    topics = Topics.for_run("1a2b3c4d")
    assert topics.prefix == "bench.1a2b3c4d."
    assert (topics.requests, topics.decisions, topics.outbound, topics.consent) == (
        "bench.1a2b3c4d.messages.requests.v1",
        "bench.1a2b3c4d.messages.decisions.v1",
        "bench.1a2b3c4d.messages.outbound.v1",
        "bench.1a2b3c4d.consent.events.v1",
    )
    created = {spec.name for spec in topics.specs()}
    assert created - _service_names(topics.prefix) == {topics.scratch}
    assert "bench.1a2b3c4d.messages.requests.v1.dlq" in created


def test_the_run_prefix_replaces_the_benchmarks_own() -> None:
    """A benchmark started with a prefix of its own still names its topics as its
    services, started with only the run's prefix, name them."""
    shown = _python(
        "from bench.private import prefixed; import shared.topics as t;"
        " print(prefixed('bench.r.', t.MESSAGES_REQUESTS))",
        {"KAFKA_TOPIC_PREFIX": "outer."},
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == ["bench.r.messages.requests.v1"]
    assert prefixed("bench.r.", "consent.events.v1") == "bench.r.consent.events.v1"


def test_a_service_is_not_started_on_the_contracts_topics() -> None:
    # A service that does not exist: were the prefix not checked first, the import
    # would fail instead, and nothing would be started either way.
    refused = subprocess.run(
        [sys.executable, "-m", "bench.isolated_service", "no_such_service"],
        cwd=ROOT,
        env={},
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1
    assert "KAFKA_TOPIC_PREFIX is not set" in refused.stderr
