"""Where the real Kafka and PostgreSQL are, in order: explicit env URLs, the
project's local stack (started by `make test`), testcontainers where Docker runs."""

import os
import shutil
import socket
from dataclasses import dataclass

from shared.settings import LOCAL_DATABASE_URL


@dataclass(frozen=True)
class Stack:
    kafka_bootstrap: str
    database_url: str


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def locate_stack() -> Stack:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    database = os.environ.get("DATABASE_URL")
    if kafka and database:
        return Stack(kafka, database)
    if _reachable("127.0.0.1", 9092) and _reachable("127.0.0.1", 55432):
        return Stack(kafka or "localhost:9092", database or LOCAL_DATABASE_URL)
    if shutil.which("docker") and _docker_engine():
        return _testcontainers_stack()
    raise RuntimeError(
        "no Kafka/PostgreSQL: set KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL, "
        "or run `make infra-up` (make test does it for you)"
    )


def _docker_engine() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:
        return False


def _testcontainers_stack() -> Stack:  # pragma: no cover - needs a Docker engine
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    kafka = KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft()
    postgres = PostgresContainer("postgres:15", username="consent", password="consent")
    kafka.start()
    postgres.start()
    url = postgres.get_connection_url().replace("+psycopg2", "")
    return Stack(kafka.get_bootstrap_server(), url)
