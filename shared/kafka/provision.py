"""Creates the contract's Kafka topics (CONTRACT.md section 1), idempotently.

    python -m shared.kafka.provision

Creates every topic of `shared.topics.ALL` plus a `<topic>.dlq` for each topic
we consume, all with the same partition count (`KAFKA_PARTITIONS`, default 3),
so the keyed-by-recipient topics are co-partitioned. Topics that exist are
checked, never silently accepted as they are:

- a partition count that differs is an error (the fix, adding partitions,
  changes which partition a key lands on: an operator's decision, not ours);
- so is a replication factor below the one asked for (reassigning replicas
  is an operator's job too);
- a topic config we require (the event log's infinite retention and broker
  timestamps; on every topic `min.insync.replicas` one below its replication
  factor and no unclean leader election) that differs is set, and said so,
  because the contract requires it; other dynamic configs an operator set on
  the topic are kept.

With `ERASURE_MODE=on` (shared/erasure/mode.py) every topic holding personal
data in clear must have a bounded `retention.ms` and a `segment.ms` of a day, set
on existing topics like any required config: the event log's retention then goes
from -1 to 21 days. Turned off again, the contract's
never-trimmed configs come back where it has any (the event log, the DLQs); the
other topics keep the bounds set on them, as an operator's own.

Environment: `KAFKA_BOOTSTRAP_SERVERS` (default localhost:9092),
`KAFKA_PARTITIONS` (default 3), `KAFKA_REPLICATION_FACTOR` (default 1: the
local single broker; a 3-broker cluster wants 3), `ERASURE_MODE` (default off),
and on a secured cluster a super user's `KAFKA_SECURITY_PROTOCOL` /
`KAFKA_SASL_*` / `KAFKA_SSL_*` (shared/kafka/security.py); `python -m
shared.kafka.acls` then applies the ACLs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

from shared.erasure.mode import ErasureMode, ErasureModeError, erasure_mode
from shared.kafka.security import security_options
from shared.kafka.topic_configs import enforce_configs
from shared.kafka.topic_specs import (
    ProvisioningError,
    TopicSpec,
    required_configs,
    topic_specs,
)

DEFAULT_BOOTSTRAP = "localhost:9092"
DEFAULT_PARTITIONS = 3

_TOPIC_ALREADY_EXISTS = 36

log = logging.getLogger("shared.kafka.provision")


async def provision_topics(
    bootstrap: str,
    partitions: int,
    replication_factor: int = 1,
    mode: ErasureMode | None = None,
) -> None:
    """Creates the missing topics and verifies the existing ones, with the configs
    of `mode` (ERASURE_MODE's when None); raises ProvisioningError with every
    problem found."""
    if partitions < 1:
        raise ProvisioningError(f"the partition count must be at least 1, not {partitions}")
    if replication_factor < 1:
        raise ProvisioningError(
            f"the replication factor must be at least 1, not {replication_factor}"
        )
    specs = topic_specs(mode)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="consent-provision", **security_options()
    )
    await admin.start()
    try:
        await _create_missing(admin, specs, partitions, replication_factor)
        replicas = await _check_layout(admin, specs, partitions, replication_factor)
        await enforce_configs(admin, specs, replicas)
    finally:
        await admin.close()


async def _create_missing(
    admin: Any, specs: list[TopicSpec], partitions: int, replication_factor: int
) -> None:
    existing = set(await admin.list_topics())
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return
    response = await admin.create_topics(
        [
            NewTopic(
                s.name,
                partitions,
                replication_factor,
                topic_configs=required_configs(s, replication_factor),
            )
            for s in missing
        ],
        timeout_ms=30_000,
    )
    problems = []
    for err in response.to_object()["topic_errors"]:
        code = err["error_code"]
        if code == 0:
            log.info(
                "created %s (%d partitions, replication factor %d)",
                err["topic"],
                partitions,
                replication_factor,
            )
        elif code == _TOPIC_ALREADY_EXISTS:
            # Another provisioner won the race; the checks below cover it.
            log.info("%s was created concurrently", err["topic"])
        else:
            detail = err.get("error_message") or for_code(code).__name__
            problems.append(f"cannot create {err['topic']}: {detail}")
    if problems:
        raise ProvisioningError("; ".join(problems))


async def _layouts(admin: Any, names: list[str]) -> dict[str, tuple[int, int]]:
    """Returns (partition count, fewest replicas of a partition) per topic, waiting
    briefly for a just-created topic's metadata to reach the broker that answers (it
    may lag the controller)."""
    deadline = time.monotonic() + 15
    while True:
        described = await admin.describe_topics(names)
        layouts = {
            d["topic"]: (len(d["partitions"]), min(len(p["replicas"]) for p in d["partitions"]))
            for d in described
            if d["error_code"] == 0 and d["partitions"]
        }
        if len(layouts) == len(names) or time.monotonic() > deadline:
            return layouts
        await asyncio.sleep(0.2)


async def _check_layout(
    admin: Any, specs: list[TopicSpec], partitions: int, replication_factor: int
) -> dict[str, int]:
    """Raises unless every topic has `partitions` partitions and at least
    `replication_factor` replicas; returns each topic's replication factor."""
    names = [s.name for s in specs]
    layouts = await _layouts(admin, names)
    problems = []
    for name in names:
        if name not in layouts:
            problems.append(f"{name} does not appear in the cluster's metadata")
            continue
        found, replicas = layouts[name]
        if found != partitions:
            problems.append(f"{name} has {found} partitions, expected {partitions}")
        if replicas < replication_factor:
            problems.append(
                f"{name} has {replicas} replica(s), expected {replication_factor} "
                "(KAFKA_REPLICATION_FACTOR)"
            )
    if problems:
        raise ProvisioningError(
            "\n  ".join(["topics differ from the required layout:", *problems])
            + "\nEvery topic must have the same partition count (co-partitioning) and "
            "the replication factor asked for. Either set KAFKA_PARTITIONS and "
            "KAFKA_REPLICATION_FACTOR to what exists, or recreate the topics "
            "(on the local broker: make down; rm -rf .local/kafka/data; make up)."
        )
    return {name: layouts[name][1] for name in names}


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ProvisioningError(f"{name} must be an integer, not {raw!r}") from None


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="[provision] %(message)s", stream=sys.stderr)
    # aiokafka logs connection failures itself at ERROR; our message says it once.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP
    try:
        partitions = _int_env("KAFKA_PARTITIONS", DEFAULT_PARTITIONS)
        replication = _int_env("KAFKA_REPLICATION_FACTOR", 1)
        mode = erasure_mode()
        if mode is ErasureMode.ON:
            log.info("ERASURE_MODE=on: bounding the retention of the topics in clear")
        asyncio.run(provision_topics(bootstrap, partitions, replication, mode))
    except (ProvisioningError, ErasureModeError) as exc:
        log.error("ERROR: %s", exc)
        return 1
    except Exception as exc:  # connection failures and the like: one clear line
        reason = (
            str(exc) if str(exc).startswith(type(exc).__name__) else f"{type(exc).__name__}: {exc}"
        )
        log.error("ERROR: provisioning topics on %s failed: %s", bootstrap, reason)
        return 1
    log.info(
        "%d topics ready on %s (%d partitions each)", len(topic_specs(mode)), bootstrap, partitions
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
