"""ERASURE_MODE in provisioning: `on` bounds the retention of every topic holding
personal data in clear, on new and existing topics alike; `off` requires what the
contract does and nothing more. Through the in-memory admin client of
test_provision_configs, and the start check on configs as a broker reports them."""

from collections.abc import Sequence

import pytest

from shared.erasure.mode import (
    BOUNDED_TOPICS,
    CHECKED_CONFIGS,
    ErasureMode,
    ErasureModeError,
    UnboundedRetentionError,
)
from shared.kafka import provision, topic_retention
from shared.kafka.provision import provision_topics
from shared.kafka.topic_retention import require_bounded_retention
from shared.kafka.topic_specs import (
    DLQ_CONFIGS,
    EVENT_LOG_CONFIGS,
    LEDGER_CONFIGS,
    TopicSpec,
    topic_specs,
)
from shared.topics import (
    ALL,
    CONSENT_EVENTS,
    CONSUMED,
    LEDGERS,
    MESSAGES_DECISIONS,
    MESSAGES_REQUESTS,
    WHATSAPP_INBOUND,
    dlq,
)
from tests.unit.test_provision_configs import FakeAdmin

DAY_MS = 86_400_000
DLQS = [dlq(t) for t in CONSUMED]


def by_name(specs: list[TopicSpec]) -> dict[str, dict[str, str]]:
    return {s.name: dict(s.configs) for s in specs}


def test_off_requires_what_the_contract_does_and_nothing_more() -> None:
    assert by_name(topic_specs(ErasureMode.OFF)) == {
        **{t: dict(EVENT_LOG_CONFIGS) if t == CONSENT_EVENTS else {} for t in ALL},
        **{t: dict(DLQ_CONFIGS) for t in DLQS},
        **{t: dict(LEDGER_CONFIGS) for t in LEDGERS},
    }
    assert by_name(topic_specs(ErasureMode.OFF))[CONSENT_EVENTS]["retention.ms"] == "-1"


def test_on_bounds_every_topic_but_the_ledgers() -> None:
    specs = by_name(topic_specs(ErasureMode.ON))

    assert set(specs) - set(LEDGERS) == set(BOUNDED_TOPICS)
    retentions = {name: specs[name]["retention.ms"] for name in BOUNDED_TOPICS}
    assert retentions == {
        **dict.fromkeys(BOUNDED_TOPICS, str(7 * DAY_MS)),
        CONSENT_EVENTS: str(21 * DAY_MS),
        MESSAGES_DECISIONS: str(21 * DAY_MS),
        **dict.fromkeys(DLQS, str(14 * DAY_MS)),
    }
    assert {specs[name]["segment.ms"] for name in BOUNDED_TOPICS} == {str(DAY_MS)}
    assert {specs[name]["message.timestamp.after.max.ms"] for name in BOUNDED_TOPICS} == {"3600000"}


def test_on_keeps_the_event_logs_other_configs_and_the_dlqs_size() -> None:
    specs = by_name(topic_specs(ErasureMode.ON))

    assert specs[CONSENT_EVENTS] == {
        **EVENT_LOG_CONFIGS,
        "retention.ms": str(21 * DAY_MS),
        "segment.ms": str(DAY_MS),
        "message.timestamp.after.max.ms": "3600000",
    }
    for name in DLQS:
        assert specs[name]["max.message.bytes"] == DLQ_CONFIGS["max.message.bytes"], name


@pytest.mark.parametrize("mode", list(ErasureMode))
def test_the_ledgers_are_never_trimmed_in_either_mode(mode: ErasureMode) -> None:
    specs = by_name(topic_specs(mode))

    assert {name: specs[name] for name in LEDGERS} == {
        name: dict(LEDGER_CONFIGS) for name in LEDGERS
    }
    assert {specs[name]["retention.ms"] for name in LEDGERS} == {"-1"}


def test_the_mode_defaults_to_the_environments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ERASURE_MODE", raising=False)
    assert topic_specs() == topic_specs(ErasureMode.OFF)
    monkeypatch.setenv("ERASURE_MODE", "on")
    assert topic_specs() == topic_specs(ErasureMode.ON)
    monkeypatch.setenv("ERASURE_MODE", "true")
    with pytest.raises(ErasureModeError, match="ERASURE_MODE"):
        topic_specs()


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> FakeAdmin:
    fake = FakeAdmin({})
    monkeypatch.setattr(provision, "AIOKafkaAdminClient", lambda **_: fake)
    return fake


async def test_topics_created_in_erasure_mode_get_bounded_retention(admin: FakeAdmin) -> None:
    await provision_topics("fake:9092", partitions=3, mode=ErasureMode.ON)

    configs = {name: topic["configs"] for name, topic in admin.topics.items()}
    assert configs[WHATSAPP_INBOUND]["retention.ms"] == str(7 * DAY_MS)
    assert configs[CONSENT_EVENTS]["retention.ms"] == str(21 * DAY_MS)
    assert configs[dlq(MESSAGES_REQUESTS)]["retention.ms"] == str(14 * DAY_MS)
    assert {configs[name]["retention.ms"] for name in LEDGERS} == {"-1"}
    assert admin.altered == {}


async def test_existing_topics_are_bounded_when_erasure_mode_is_turned_on(
    admin: FakeAdmin,
) -> None:
    await provision_topics("fake:9092", partitions=3, mode=ErasureMode.OFF)
    admin.topics[WHATSAPP_INBOUND]["configs"]["max.message.bytes"] = "2000000"  # an operator's

    await provision_topics("fake:9092", partitions=3, mode=ErasureMode.ON)

    assert set(admin.altered) == set(BOUNDED_TOPICS)
    assert admin.altered[CONSENT_EVENTS]["retention.ms"] == str(21 * DAY_MS)
    assert admin.altered[CONSENT_EVENTS]["message.timestamp.type"] == "LogAppendTime"
    assert admin.altered[WHATSAPP_INBOUND] == {
        "max.message.bytes": "2000000",
        "retention.ms": str(7 * DAY_MS),
        "segment.ms": str(DAY_MS),
        "message.timestamp.after.max.ms": "3600000",
        "min.insync.replicas": "1",
        "unclean.leader.election.enable": "false",
    }


async def test_a_shortened_event_log_is_set_to_erasure_modes_retention_not_to_ever(
    admin: FakeAdmin,
) -> None:
    await provision_topics("fake:9092", partitions=3, mode=ErasureMode.ON)
    admin.topics[CONSENT_EVENTS]["configs"]["retention.ms"] = str(DAY_MS)

    await provision_topics("fake:9092", partitions=3, mode=ErasureMode.ON)

    assert admin.altered[CONSENT_EVENTS]["retention.ms"] == str(21 * DAY_MS)
    assert set(admin.altered) == {CONSENT_EVENTS}


async def test_turned_off_the_contracts_never_trimmed_log_comes_back(admin: FakeAdmin) -> None:
    """The event log and the DLQs have retention the contract requires; the other
    topics keep the bounds set on them, as an operator's own configs."""
    await provision_topics("fake:9092", partitions=3, mode=ErasureMode.ON)

    await provision_topics("fake:9092", partitions=3, mode=ErasureMode.OFF)

    assert set(admin.altered) == {CONSENT_EVENTS, *DLQS}
    assert admin.altered[CONSENT_EVENTS]["retention.ms"] == "-1"
    assert {admin.altered[name]["retention.ms"] for name in DLQS} == {"-1"}
    assert admin.topics[WHATSAPP_INBOUND]["configs"]["retention.ms"] == str(7 * DAY_MS)


async def test_provisioning_twice_in_erasure_mode_changes_nothing(admin: FakeAdmin) -> None:
    await provision_topics("fake:9092", partitions=3, mode=ErasureMode.ON)
    await provision_topics("fake:9092", partitions=3, mode=ErasureMode.ON)

    assert admin.altered == {}


def reported(configs: dict[str, dict[str, str | None]]) -> object:
    """configs_in_force, answering as a broker with these topics would."""

    async def configs_in_force(
        bootstrap: str, topics: Sequence[str], names: Sequence[str]
    ) -> dict[str, dict[str, str | None]]:
        assert tuple(names) == CHECKED_CONFIGS
        return {t: configs[t] for t in topics if t in configs}

    return configs_in_force


BOUNDED = {
    "retention.ms": str(7 * DAY_MS),
    "segment.ms": str(DAY_MS),
    "cleanup.policy": "delete",
    "message.timestamp.type": "CreateTime",
    "message.timestamp.after.max.ms": "3600000",
}


async def test_the_start_check_accepts_bounded_topics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(topic_retention, "configs_in_force", reported({"a": BOUNDED}))

    await require_bounded_retention("broker:9092", ["a"])


async def test_the_start_check_refuses_naming_each_topic_and_its_figures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forever = {**BOUNDED, "retention.ms": "-1"}
    monkeypatch.setattr(topic_retention, "configs_in_force", reported({"a": BOUNDED, "b": forever}))

    with pytest.raises(UnboundedRetentionError) as refused:
        await require_bounded_retention("broker:9092", ["a", "b", "c"])

    assert "b keeps its records for ever (retention.ms=-1)" in str(refused.value)
    assert "c does not exist" in str(refused.value)
    assert "a has" not in str(refused.value)
