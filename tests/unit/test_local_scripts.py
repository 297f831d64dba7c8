"""deploy/local/kafka.sh and postgres.sh as the fault-injection harness and the
Makefile call them, checked without starting anything (no java, no server):
the addresses they print, their refusals, and the broker config template."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from shared.db.roles import ROLE_URL_VARIABLES

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "deploy" / "local"


def run(script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Only what the test sets: a variable of the caller's must not change the answer.
    scrubbed = {
        k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "PG_", "DATABASE_URL"))
    }
    return subprocess.run(
        ["bash", str(LOCAL / script), *args],
        env=scrubbed | env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "bootstrap"),
    [
        ({}, "127.0.0.1:9092"),
        ({"KAFKA_BROKERS": "3"}, "127.0.0.1:19092,127.0.0.1:29092,127.0.0.1:39092"),
        (
            {"KAFKA_BROKERS": "3", "KAFKA_PORTS": "19192 29192 31192"},
            "127.0.0.1:19192,127.0.0.1:29192,127.0.0.1:31192",
        ),
    ],
)
def test_kafka_bootstrap_names_every_broker(env: dict[str, str], bootstrap: str) -> None:
    done = run("kafka.sh", "bootstrap", **env)
    assert (done.returncode, done.stdout.strip()) == (0, bootstrap)


@pytest.mark.parametrize(("brokers", "factor"), [("1", "1"), ("3", "3")])
def test_topics_are_replicated_on_every_broker_up_to_three(brokers: str, factor: str) -> None:
    done = run("kafka.sh", "replication-factor", KAFKA_BROKERS=brokers)
    assert (done.returncode, done.stdout.strip()) == (0, factor)


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"KAFKA_BROKERS": "3", "KAFKA_PORTS": "19192 29192"}, "one broker port per node"),
        ({"KAFKA_BROKERS": "3", "KAFKA_PORTS": "19192 19193 31192"}, "overlap"),
        ({"KAFKA_BROKERS": "three"}, "KAFKA_BROKERS"),
    ],
)
def test_kafka_refuses_ports_it_cannot_use(env: dict[str, str], complaint: str) -> None:
    done = run("kafka.sh", "bootstrap", **env)
    assert done.returncode != 0
    assert complaint in done.stderr


def test_a_fresh_instance_reports_every_node_stopped(tmp_path: Path) -> None:
    env = {"KAFKA_HOME_DIR": str(tmp_path / "kafka"), "KAFKA_BROKERS": "3"}
    status = run("kafka.sh", "status", **env)
    assert status.returncode == 3
    assert status.stdout.splitlines() == [f"kafka node{n}: not running" for n in (1, 2, 3)]
    assert run("kafka.sh", "pid", "2", **env).returncode == 3
    assert run("kafka.sh", "kill", "2", **env).returncode == 0  # nothing to kill: no error
    assert run("kafka.sh", "kill", "4", **env).returncode != 0  # no node 4
    assert run("kafka.sh", "stop", **env).returncode == 0


def test_every_placeholder_of_the_broker_config_is_filled() -> None:
    template = (ROOT / "deploy" / "kafka" / "server.properties.in").read_text("utf-8")
    settings = "\n".join(line for line in template.splitlines() if not line.startswith("#"))
    filled = set(re.findall(r"s\|(@[A-Z_]+@)\|", (LOCAL / "kafka.sh").read_text("utf-8")))
    assert set(re.findall(r"@[A-Z_]+@", settings)) == filled


def test_the_broker_config_keeps_acknowledged_records() -> None:
    template = (ROOT / "deploy" / "kafka" / "server.properties.in").read_text("utf-8")
    settings = dict(
        line.split("=", 1) for line in template.splitlines() if "=" in line and line[0] != "#"
    )
    assert settings["unclean.leader.election.enable"] == "false"
    assert settings["min.insync.replicas"] == settings["transaction.state.log.min.isr"]
    assert settings["offsets.topic.replication.factor"] == settings["default.replication.factor"]


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "postgresql://consent:consent@127.0.0.1:55432/consent"),
        ({"PG_PORT": "55433"}, "postgresql://consent:consent@127.0.0.1:55433/consent"),
    ],
)
def test_postgres_url_is_the_one_the_instance_serves(env: dict[str, str], url: str) -> None:
    done = run("postgres.sh", "url", **env)
    assert (done.returncode, done.stdout.strip()) == (0, url)


def test_a_second_postgres_that_does_not_run_is_reported_so(tmp_path: Path) -> None:
    env = {"PG_HOME_DIR": str(tmp_path / "pg"), "PG_PORT": "55499"}
    assert run("postgres.sh", "status", **env).returncode == 3
    assert run("postgres.sh", "crash", **env).returncode == 0
    assert run("postgres.sh", "stop", **env).returncode == 0


# Each service's variable and login role (deploy/postgres/roles.sql), in order.
ROLE_LOGINS = {
    "CONSENT_PROJECTOR_DATABASE_URL": "consent_projector_login",
    "CONSENT_API_DATABASE_URL": "consent_api_login",
    "DISPATCHER_DATABASE_URL": "consent_dispatcher_login",
    "AUDIT_DATABASE_URL": "consent_audit_login",
}


def test_postgres_role_urls_give_each_service_its_role(tmp_path: Path) -> None:
    passwords = tmp_path / "pg-roles.env"
    passwords.write_text("".join(f"{login}=pw-{login}\n" for login in ROLE_LOGINS.values()))
    done = run("postgres.sh", "role-urls", PG_PORT="55433", PG_ROLES_FILE=str(passwords))
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        f"{variable}=postgresql://{login}:pw-{login}@127.0.0.1:55433/consent"
        for variable, login in ROLE_LOGINS.items()
    ]
    # The variables the services read (shared/db/roles.py).
    assert tuple(ROLE_LOGINS) == ROLE_URL_VARIABLES
    # The local cluster's own URL, given explicitly, is still the local cluster.
    same = run(
        "postgres.sh",
        "role-urls",
        PG_ROLES_FILE=str(passwords),
        DATABASE_URL="postgresql://consent:consent@127.0.0.1:55432/consent",
    )
    assert len(same.stdout.splitlines()) == 4


def test_postgres_role_urls_leave_a_database_of_ones_own_to_database_url(tmp_path: Path) -> None:
    done = run(
        "postgres.sh",
        "role-urls",
        PG_ROLES_FILE=str(tmp_path / "none.env"),
        DATABASE_URL="postgresql://user:pw@db:5432/consent",
    )
    assert (done.returncode, done.stdout) == (0, "")


def test_postgres_role_urls_need_the_passwords_start_generates(tmp_path: Path) -> None:
    done = run("postgres.sh", "role-urls", PG_ROLES_FILE=str(tmp_path / "none.env"))
    assert done.returncode != 0
    assert "postgres.sh start" in done.stderr
