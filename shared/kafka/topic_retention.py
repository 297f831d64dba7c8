"""Reads how long topics keep their records, as the brokers apply it."""

from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
    for_code,
)

from shared.erasure.mode import (
    CHECKED_CONFIGS,
    UnboundedRetentionError,
    bounded_retention_refusal,
)
from shared.kafka.security import security_options
from shared.kafka.topic_configs import describe_topic_configs

RETENTION_MS = "retention.ms"


class TopicConfigUnreadableError(RuntimeError):
    """A broker would not tell a topic's config."""


class TopicConfigNotAuthorizedError(TopicConfigUnreadableError):
    """The client's principal may not DescribeConfigs the topic (a secured cluster)."""


async def configs_in_force(
    bootstrap: str, topics: Sequence[str], names: Sequence[str]
) -> dict[str, dict[str, str | None]]:
    """Returns the configs `names` of each topic as the brokers apply them, whether set
    on the topic or inherited from the brokers' defaults; a topic that does not exist
    is left out (it keeps nothing)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="retention-check", **security_options()
    )
    await admin.start()
    try:
        # A short wait: these topics were provisioned long before a service starts.
        responses = await describe_topic_configs(admin, list(topics), timeout=3.0)
    finally:
        await admin.close()
    found: dict[str, dict[str, str | None]] = {}
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
            found[name] = {key: entries.get(key) for key in names}
    return found


async def retention_ms(bootstrap: str, topics: Sequence[str]) -> dict[str, int]:
    """Returns each topic's `retention.ms` in force (-1: for ever), whether set on the
    topic or inherited from the broker's `log.retention.*`; a topic that does not
    exist is left out (it keeps nothing)."""
    found = await configs_in_force(bootstrap, topics, [RETENTION_MS])
    return {name: int(configs[RETENTION_MS] or "") for name, configs in found.items()}


async def require_bounded_retention(bootstrap: str, topics: Sequence[str]) -> None:
    """Raises UnboundedRetentionError, naming each offending topic and its figures,
    unless every one of `topics` drops its records within the erasure deadline
    (shared/erasure/mode.py): the start check of a service in ERASURE_MODE=on. A
    topic that does not exist is refused too, and so is a principal that may not
    read the configs (TopicConfigNotAuthorizedError): a retention not known to be
    bounded is no promise to make a person."""
    found = await configs_in_force(bootstrap, topics, CHECKED_CONFIGS)
    refusal = bounded_retention_refusal(found, topics)
    if refusal is not None:
        raise UnboundedRetentionError(refusal)
