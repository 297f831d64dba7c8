"""Reads how long topics keep their records, as the brokers apply it."""

from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
    for_code,
)

from shared.kafka.security import security_options
from shared.kafka.topic_configs import describe_topic_configs

RETENTION_MS = "retention.ms"


class TopicConfigUnreadableError(RuntimeError):
    """A broker would not tell a topic's config."""


class TopicConfigNotAuthorizedError(TopicConfigUnreadableError):
    """The client's principal may not DescribeConfigs the topic (a secured cluster)."""


async def retention_ms(bootstrap: str, topics: Sequence[str]) -> dict[str, int]:
    """Returns each topic's `retention.ms` in force (-1: for ever), whether set on the
    topic or inherited from the broker's `log.retention.*`; a topic that does not
    exist is left out (it keeps nothing)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="retention-check", **security_options()
    )
    await admin.start()
    try:
        # A short wait: these topics were provisioned long before a service starts.
        responses = await describe_topic_configs(admin, list(topics), timeout=3.0)
    finally:
        await admin.close()
    found: dict[str, int] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            name = resource["resource_name"]
            code = resource["error_code"]
            if code == UnknownTopicOrPartitionError.errno:
                continue
            if code != 0:
                refused = (
                    TopicConfigNotAuthorizedError
                    if code == TopicAuthorizationFailedError.errno
                    else TopicConfigUnreadableError
                )
                raise refused(
                    f"cannot read the configs of {name}: {for_code(code).__name__} "
                    f"{resource['error_message'] or ''}".strip()
                )
            entries = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
            found[name] = int(entries[RETENTION_MS])
    return found
