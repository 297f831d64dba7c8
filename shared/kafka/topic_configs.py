"""Brings topic configs to what the contract requires, keeping an operator's own."""

import asyncio
import logging
import time
from typing import Any

from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import for_code

from shared.kafka.topic_specs import ProvisioningError, TopicSpec, required_configs

# DescribeConfigs' config_source for a config set on the topic itself.
_DYNAMIC_TOPIC_CONFIG = 1

log = logging.getLogger("shared.kafka.provision")


async def describe_topic_configs(admin: Any, names: list[str], timeout: float = 30.0) -> list[Any]:
    """Asks DescribeConfigs of `names`, again while a broker answers with an error
    for one of them: right after the topics are created, a broker of a cluster may
    not know them yet (it answers with an error and an empty message)."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    deadline = time.monotonic() + timeout
    while True:
        responses: list[Any] = await admin.describe_configs(resources)
        failing = [
            resource
            for response in responses
            for resource in response.to_object()["resources"]
            if resource["error_code"] != 0
        ]
        if not failing or time.monotonic() > deadline:
            return responses
        await asyncio.sleep(0.5)


async def enforce_configs(admin: Any, specs: list[TopicSpec], replicas: dict[str, int]) -> None:
    """Sets every required config that differs, keeping what an operator set."""
    # From each topic's own replication factor, not the one asked for: a
    # provisioning that asks for less must not weaken a topic that has more.
    wanted = {s.name: required_configs(s, replicas[s.name]) for s in specs}
    responses = await describe_topic_configs(admin, list(wanted))
    to_alter: list[Any] = []
    for response in responses:
        for resource in response.to_object()["resources"]:
            name = resource["resource_name"]
            if resource["error_code"] != 0:
                error = for_code(resource["error_code"]).__name__
                raise ProvisioningError(
                    f"cannot read the configs of {name}: {error} {resource['error_message']}"
                )
            entries = {e["config_names"]: e for e in resource["config_entries"]}
            differing = {
                key: value
                for key, value in wanted[name].items()
                if key not in entries or entries[key]["config_value"] != value
            }
            if not differing:
                continue
            for key, value in differing.items():
                current = entries[key]["config_value"] if key in entries else "unset"
                log.warning("%s: setting %s=%s (was %s)", name, key, value, current)
            # AlterConfigs replaces the topic's whole dynamic config: carry over
            # what an operator set, then overlay what the contract requires.
            merged = {
                key: e["config_value"]
                for key, e in entries.items()
                if e.get("config_source") == _DYNAMIC_TOPIC_CONFIG and e["config_value"] is not None
            }
            merged.update(wanted[name])
            to_alter.append(ConfigResource(ConfigResourceType.TOPIC, name, merged))
    if not to_alter:
        return
    for response in await admin.alter_configs(to_alter):
        for resource in response.to_object()["resources"]:
            if resource["error_code"] != 0:
                raise ProvisioningError(
                    f"cannot set the configs of {resource['resource_name']}: "
                    f"{resource['error_message'] or for_code(resource['error_code']).__name__}"
                )
