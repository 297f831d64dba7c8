"""A three-broker cluster keeps every acknowledged record through the loss of a
partition's leader: replication factor 3, min.insync.replicas 2, no unclean
election (as provisioning sets them) and the services' producer (acks=all,
idempotent).

The cluster is the test's own: deploy/local/kafka.sh with KAFKA_BROKERS=3 in a
temporary instance directory, on free ports, so the shared local broker is
never touched. It needs java and the jars of `make deps`; without them the test
is skipped, saying which is missing."""

import asyncio
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from shared.kafka.clients import durable_producer
from shared.kafka.provision import provision_topics
from shared.topics import CONSENT_EVENTS

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = ROOT / "deploy" / "local" / "kafka.sh"
LIBS = ROOT / ".local" / "kafka" / "libs"
NODES = 3
PARTITION = TopicPartition(CONSENT_EVENTS, 0)


def _missing_prerequisite() -> str | None:
    if shutil.which("java") is None:
        return "java not found: the cluster's brokers need a JRE 17+"
    if not (ROOT / ".venv" / "bin" / "python").exists():
        return "no .venv: kafka.sh waits for the brokers with the project's aiokafka (make venv)"
    if not any(LIBS.glob("kafka_2.13-*.jar")):
        return f"no Kafka jars in {LIBS}: `make deps` fetches them"
    stamp = LIBS.parent / "libs.sha256"
    pom = sha256((ROOT / "deploy" / "kafka" / "pom.xml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text().strip() != pom:
        return f"the jars in {LIBS} are not those of deploy/kafka/pom.xml: `make deps`"
    return None


MISSING = _missing_prerequisite()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(MISSING is not None, reason=MISSING or ""),
    pytest.mark.timeout(240),
]


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port_pairs(count: int) -> list[int]:
    """Broker ports whose next port (the node's controller) is free too: below
    the kernel's ephemeral range, so no outgoing connection takes one meanwhile,
    and clear of the ports of the project's own clusters (19092 29092 39092,
    the fault runs' 19192 29192 31192), whose nodes may be down for a while."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(21_000, 29_000, 2)
        if port not in ports and _free(port) and _free(port + 1):
            ports.append(port)
    return ports


@dataclass
class Cluster:
    home: Path
    ports: list[int]

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def script(self, *args: str, timeout: float = 120) -> str:
        # Whatever the caller's environment points at, the script acts on this
        # instance only.
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
        env |= {
            "KAFKA_HOME_DIR": str(self.home),
            "KAFKA_BROKERS": str(NODES),
            "KAFKA_PORTS": " ".join(map(str, self.ports)),
            "KAFKA_STOP_TIMEOUT": "15",
        }
        done = subprocess.run(
            ["bash", str(KAFKA_SH), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"kafka.sh {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
        return done.stdout.strip()

    def pids(self) -> dict[int, int]:
        return {node: int(self.script("pid", str(node))) for node in range(1, NODES + 1)}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path / "kafka", _free_port_pairs(NODES))
    try:
        started = time.monotonic()
        running.script("start")
        print(f"3-node cluster ready in {time.monotonic() - started:.1f}s")
        yield running
    finally:
        running.script("stop")


class Writer:
    """Writes numbered records to one partition until stopped, remembering which
    the cluster acknowledged and which failed."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.acked: list[int] = []
        self.failed: list[int] = []
        self._stop = asyncio.Event()

    async def run(self) -> None:
        number = 0
        while not self._stop.is_set():
            sent = []
            for _ in range(10):
                try:
                    future = await self.producer.send(
                        PARTITION.topic, str(number).encode(), partition=PARTITION.partition
                    )
                except KafkaError:
                    self.failed.append(number)
                else:
                    sent.append((number, future))
                number += 1
            for sent_number, future in sent:
                try:
                    await future
                except KafkaError:
                    self.failed.append(sent_number)
                else:
                    self.acked.append(sent_number)
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()

    async def until_acked(self, count: int, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while len(self.acked) < count:  # noqa: ASYNC110 - polled between batches
                await asyncio.sleep(0.05)


async def _partition(admin: AIOKafkaAdminClient) -> dict[str, Any]:
    (topic,) = await admin.describe_topics([PARTITION.topic])
    partition: dict[str, Any] = next(
        p for p in topic["partitions"] if p["partition"] == PARTITION.partition
    )
    return partition


async def _wait_partition(admin: AIOKafkaAdminClient, ok: Any, timeout: float = 30) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            try:
                partition = await _partition(admin)
            except KafkaError:  # asked the dead node: the next try asks another
                partition = None
            if partition is not None and ok(partition):
                return partition
            await asyncio.sleep(0.2)


async def _topic_configs(admin: AIOKafkaAdminClient, topic: str) -> dict[str, str]:
    (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    (resource,) = response.to_object()["resources"]
    return {e["config_names"]: e["config_value"] for e in resource["config_entries"]}


async def _read_partition(bootstrap: str) -> list[int]:
    # From the first offset by the reset policy itself: an explicit
    # seek_to_beginning races the reset to "latest" that assign() starts.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign([PARTITION])
        end = (await consumer.end_offsets([PARTITION]))[PARTITION]
        values: list[int] = []
        async with asyncio.timeout(30):
            while await consumer.position(PARTITION) < end:
                batch = await consumer.getmany(PARTITION, timeout_ms=500)
                values += [int(r.value) for r in batch.get(PARTITION, [])]
        return values
    finally:
        await consumer.stop()


async def test_acknowledged_records_survive_the_loss_of_the_leader(cluster: Cluster) -> None:
    await provision_topics(cluster.bootstrap, partitions=3, replication_factor=NODES)
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=5000)
    await admin.start()
    producer = durable_producer(cluster.bootstrap)
    await producer.start()
    writer = Writer(producer)
    writing = asyncio.create_task(writer.run())
    try:
        configs = await _topic_configs(admin, PARTITION.topic)
        assert configs["min.insync.replicas"] == "2"
        assert configs["unclean.leader.election.enable"] == "false"
        before = await _wait_partition(admin, lambda p: len(p["isr"]) == NODES)
        assert len(before["replicas"]) == NODES

        # Given records acknowledged by all in-sync replicas,
        await writer.until_acked(200)
        leader = before["leader"]
        others = {node: pid for node, pid in cluster.pids().items() if node != leader}
        # when the partition's leader dies at once (SIGKILL, no handover),
        await asyncio.to_thread(cluster.script, "kill", str(leader))
        killed_at, acked_at_kill = time.monotonic(), len(writer.acked)

        # then another replica leads and writes go on with one broker down,
        after = await _wait_partition(admin, lambda p: p["leader"] not in (leader, -1))
        print(
            f"leader moved from node {leader} to {after['leader']} in "
            f"{time.monotonic() - killed_at:.1f}s"
        )
        await writer.until_acked(acked_at_kill + 200)

        # and a start restarts the dead node alone, which catches up.
        await asyncio.to_thread(cluster.script, "start")
        restarted = cluster.pids()
        assert {node: restarted[node] for node in others} == others
        await _wait_partition(admin, lambda p: len(p["isr"]) == NODES)
        await writer.until_acked(len(writer.acked) + 100)
    finally:
        writer.stop()
        await writing
        await producer.stop()
        await admin.close()

    # Every acknowledged record is there exactly once, in the order written.
    values = await _read_partition(cluster.bootstrap)
    print(f"{len(writer.acked)} acknowledged, {len(writer.failed)} failed, {len(values)} read")
    assert values == sorted(set(values)), "a record is duplicated or out of order"
    lost = sorted(set(writer.acked) - set(values))
    assert not lost, f"{len(lost)} acknowledged records lost, the first {lost[:10]}"
    assert len(writer.acked) >= 500
