"""What provisioning requires of every topic so that an acknowledged record
survives a broker's loss (min.insync.replicas one below the replication factor,
no unclean leader election), computed and then applied through an in-memory
admin client."""

from types import SimpleNamespace
from typing import Any

import pytest

from shared.kafka import provision
from shared.kafka.provision import provision_topics
from shared.kafka.topic_specs import (
    EVENT_LOG_CONFIGS,
    ProvisioningError,
    replication_configs,
    required_configs,
    topic_specs,
)
from shared.topics import CONSENT_EVENTS

# DescribeConfigs' config_source values.
DYNAMIC_TOPIC, DEFAULT = 1, 5


@pytest.mark.parametrize(
    ("replication_factor", "min_insync"), [(1, "1"), (2, "1"), (3, "2"), (5, "4")]
)
def test_min_insync_replicas_is_one_below_the_replication_factor(
    replication_factor: int, min_insync: str
) -> None:
    assert replication_configs(replication_factor)["min.insync.replicas"] == min_insync


@pytest.mark.parametrize("replication_factor", [1, 3])
def test_no_topic_allows_unclean_leader_election(replication_factor: int) -> None:
    for spec in topic_specs():
        configs = required_configs(spec, replication_factor)
        assert configs["unclean.leader.election.enable"] == "false", spec.name


def test_on_three_brokers_every_topic_needs_two_in_sync_replicas() -> None:
    assert {s.name: required_configs(s, 3)["min.insync.replicas"] for s in topic_specs()} == {
        s.name: "2" for s in topic_specs()
    }


def test_the_event_log_keeps_its_own_configs_beside_the_replication_ones() -> None:
    (events,) = [s for s in topic_specs() if s.name == CONSENT_EVENTS]
    assert required_configs(events, 3).items() >= EVENT_LOG_CONFIGS.items()


class FakeAdmin:
    """The admin calls provisioning makes, on topics held in memory."""

    def __init__(self, topics: dict[str, dict[str, Any]]) -> None:
        self.topics = topics  # name -> partitions, replicas, configs
        self.altered: dict[str, dict[str, str]] = {}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        return list(self.topics)

    async def create_topics(self, new_topics: list[Any], timeout_ms: int) -> Any:
        for t in new_topics:
            self.topics[t.name] = {
                "partitions": t.num_partitions,
                "replicas": t.replication_factor,
                "configs": dict(t.topic_configs),
            }
        errors = [{"topic": t.name, "error_code": 0} for t in new_topics]
        return SimpleNamespace(to_object=lambda: {"topic_errors": errors})

    async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [
            {
                "topic": name,
                "error_code": 0,
                "partitions": [
                    {"partition": p, "replicas": list(range(self.topics[name]["replicas"]))}
                    for p in range(self.topics[name]["partitions"])
                ],
            }
            for name in names
        ]

    async def describe_configs(self, resources: list[Any]) -> list[Any]:
        described = []
        for r in resources:
            # The broker's defaults of a one-broker setup, overridden per topic.
            entries = {
                "min.insync.replicas": ("1", DEFAULT),
                "unclean.leader.election.enable": ("false", DEFAULT),
                **{k: (v, DYNAMIC_TOPIC) for k, v in self.topics[r.name]["configs"].items()},
            }
            described.append(
                {
                    "resource_name": r.name,
                    "error_code": 0,
                    "config_entries": [
                        {"config_names": k, "config_value": v, "config_source": source}
                        for k, (v, source) in entries.items()
                    ],
                }
            )
        return [SimpleNamespace(to_object=lambda: {"resources": described})]

    async def alter_configs(self, resources: list[Any]) -> list[Any]:
        for r in resources:
            self.altered[r.name] = dict(r.configs)
            self.topics[r.name]["configs"] = dict(r.configs)
        done = [{"resource_name": r.name, "error_code": 0} for r in resources]
        return [SimpleNamespace(to_object=lambda: {"resources": done})]


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> FakeAdmin:
    fake = FakeAdmin({})
    monkeypatch.setattr(provision, "AIOKafkaAdminClient", lambda **_: fake)
    return fake


async def test_topics_created_on_three_brokers_get_two_in_sync_replicas(admin: FakeAdmin) -> None:
    await provision_topics("fake:9092", partitions=3, replication_factor=3)

    assert {t["replicas"] for t in admin.topics.values()} == {3}
    for name, topic in admin.topics.items():
        assert topic["configs"]["min.insync.replicas"] == "2", name
        assert topic["configs"]["unclean.leader.election.enable"] == "false", name
    assert admin.altered == {}


async def test_a_weakened_topic_gets_its_in_sync_replicas_back(admin: FakeAdmin) -> None:
    await provision_topics("fake:9092", partitions=3, replication_factor=3)
    admin.topics[CONSENT_EVENTS]["configs"]["min.insync.replicas"] = "1"
    admin.topics[CONSENT_EVENTS]["configs"]["segment.ms"] = "3600000"  # an operator's

    await provision_topics("fake:9092", partitions=3, replication_factor=3)

    assert admin.altered[CONSENT_EVENTS]["min.insync.replicas"] == "2"
    assert admin.altered[CONSENT_EVENTS]["segment.ms"] == "3600000"
    assert set(admin.altered) == {CONSENT_EVENTS}


async def test_asking_for_fewer_replicas_does_not_weaken_existing_topics(
    admin: FakeAdmin,
) -> None:
    await provision_topics("fake:9092", partitions=3, replication_factor=3)

    # The test suite provisions with the default replication factor of 1.
    await provision_topics("fake:9092", partitions=3)

    assert admin.altered == {}
    assert {t["configs"]["min.insync.replicas"] for t in admin.topics.values()} == {"2"}


async def test_topics_with_fewer_replicas_than_asked_are_an_error(admin: FakeAdmin) -> None:
    await provision_topics("fake:9092", partitions=3, replication_factor=1)

    with pytest.raises(ProvisioningError, match="1 replica"):
        await provision_topics("fake:9092", partitions=3, replication_factor=3)
