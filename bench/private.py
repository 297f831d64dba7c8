"""What a benchmark creates for itself, and removes at its end even when it fails:
a migrated database, topics, consumer groups positioned where the run begins.

Nothing here touches the contract's topics or the shared database's rows: other
runs (tests, `make up`, other benchmarks) go on beside a benchmark undisturbed."""

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import DeleteGroupsRequest

from shared.db.migrate import apply_migrations
from shared.kafka.clients import end_offsets, offsets_reader
from shared.kafka.security import security_options
from shared.topics import PREFIX


def run_id() -> str:
    return uuid.uuid4().hex[:8]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def private_database(
    admin_url: str, label: str, migrations: Path | None = None
) -> AsyncIterator[str]:
    """A database of its own, migrated as the services migrate theirs (or with the
    `migrations` folder given, to measure an earlier schema); dropped after."""
    name = f"bench_{label}_{run_id()}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    try:
        await apply_migrations(url, migrations)
        yield url
    finally:
        await _drop_database(admin_url, name)


async def _drop_database(admin_url: str, name: str, timeout: float = 120.0) -> None:
    """WITH (FORCE) ends our own sessions; it refuses (InsufficientPrivilege) while an
    autovacuum worker, which no role of ours owns, works in the database, as it does
    after a bulk load. A plain DROP cancels such a worker itself: retry until it goes."""
    deadline = time.monotonic() + timeout
    force = " WITH (FORCE)"
    while True:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}"{force}')
            return
        except (asyncpg.InsufficientPrivilegeError, asyncpg.ObjectInUseError):
            if time.monotonic() > deadline:
                raise
            force = "" if force else " WITH (FORCE)"  # alternate: ours, then the worker
        finally:
            await admin.close()
        await asyncio.sleep(1.0)


def topic_prefix(rid: str) -> str:
    """The KAFKA_TOPIC_PREFIX of a run's services: the topics they use are the run's own."""
    return f"bench.{rid}."


def prefixed(prefix: str, topic: str) -> str:
    """`topic` (a `shared.topics` name) as a service started with KAFKA_TOPIC_PREFIX=prefix
    names it: prefix + the contract's name (without this process's own prefix, if any)."""
    return prefix + topic.removeprefix(PREFIX)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 3
    configs: Mapping[str, str] = field(default_factory=dict)


@asynccontextmanager
async def private_topics(bootstrap: str, specs: Sequence[TopicSpec]) -> AsyncIterator[None]:
    """Created, waited for (every partition has a leader), deleted after."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="bench", **security_options()
    )
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(s.name, s.partitions, 1, topic_configs=dict(s.configs)) for s in specs],
            timeout_ms=30_000,
        )
        for spec in specs:
            await _wait_for_partitions(bootstrap, spec)
        yield
    finally:
        with suppress(KafkaError, OSError):
            await admin.delete_topics([s.name for s in specs], timeout_ms=30_000)
        await admin.close()


async def _wait_for_partitions(bootstrap: str, spec: TopicSpec, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if len(await topic_ends(bootstrap, spec.name)) == spec.partitions:
                return
        except (LookupError, KafkaError):
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


async def topic_ends(bootstrap: str, topic: str) -> dict[int, int]:
    reader = offsets_reader(bootstrap)
    await reader.start()
    try:
        return await end_offsets(reader, topic)
    finally:
        await reader.stop()


async def position_group(
    bootstrap: str, group: str, topic: str, offsets: Mapping[int, int]
) -> None:
    """Commit `group`'s offsets before any member joins: a fresh group would
    otherwise start at `earliest` (the services' setting) and read the whole log."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **security_options()
    )
    await consumer.start()
    try:
        tps = {TopicPartition(topic, p): o for p, o in offsets.items()}
        consumer.assign(list(tps))
        await consumer.commit(tps)
    finally:
        await consumer.stop()


async def group_lag(bootstrap: str, group: str, topic: str) -> int:
    """Records of `topic` past `group`'s committed offsets."""
    ends = await topic_ends(bootstrap, topic)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="bench", **security_options()
    )
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    done = {tp.partition: meta.offset for tp, meta in committed.items() if tp.topic == topic}
    return sum(max(0, end - max(0, done.get(p, 0))) for p, end in ends.items())


async def delete_groups(bootstrap: str, groups: Sequence[str]) -> None:
    """aiokafka's admin client has no delete_consumer_groups: the DeleteGroups
    request goes to each group's coordinator directly. Best effort: a group that
    still has a member, or is already gone, is left to the broker's expiry."""
    if not groups:
        return
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="bench", **security_options()
    )
    await admin.start()
    try:
        for group in groups:
            with suppress(KafkaError, OSError):
                coordinator = await admin.find_coordinator(group)
                await admin._send_request(DeleteGroupsRequest([group]), coordinator)
    finally:
        await admin.close()
