"""A whole set of the system's topics under a prefix of a test's own
(KAFKA_TOPIC_PREFIX), provisioned by the real command and deleted after."""

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka.admin import AIOKafkaAdminClient

from shared.kafka.security import security_options
from shared.topics import PREFIX
from tests.support.services import ROOT
from tests.support.stack import Stack


def ours(prefix: str, topic: str) -> str:
    """`topic` (a shared.topics name) under `prefix` instead of this process's own."""
    return prefix + topic.removeprefix(PREFIX)


async def provision(stack: Stack, prefix: str, mode: str) -> str:
    """Runs the provisioning command on the prefixed topics; returns what it said."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "KAFKA_PARTITIONS": "3",
        "KAFKA_REPLICATION_FACTOR": "1",
        "ERASURE_MODE": mode,
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "shared.kafka.provision"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


@asynccontextmanager
async def deleted_after(stack: Stack, prefix: str) -> AsyncIterator[str]:
    """Deletes every topic under `prefix` when the block ends."""
    try:
        yield prefix
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap, **security_options())
        await admin.start()
        try:
            mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if mine:
                await admin.delete_topics(mine)
        finally:
            await admin.close()
