"""KAFKA_SECURED=1 in deploy/local/kafka.sh, checked without starting anything: the
secured instance is another one (its own ports and directory), and its config sets
each key once, every placeholder filled."""

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = ROOT / "deploy" / "local" / "kafka.sh"
SECURED = ROOT / "deploy" / "kafka" / "secured.properties.in"


def kafka_sh(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Only what the test sets: a variable of the caller's must not change the answer.
    scrubbed = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    return subprocess.run(
        ["bash", str(KAFKA_SH), *args],
        env=scrubbed | env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "bootstrap"),
    [
        ({"KAFKA_SECURED": "1"}, "127.0.0.1:9094"),
        (
            {"KAFKA_SECURED": "1", "KAFKA_BROKERS": "3"},
            "127.0.0.1:19094,127.0.0.1:29094,127.0.0.1:39094",
        ),
        ({"KAFKA_SECURED": "0"}, "127.0.0.1:9092"),
    ],
)
def test_the_secured_instance_has_ports_of_its_own(env: dict[str, str], bootstrap: str) -> None:
    done = kafka_sh("bootstrap", **env)
    assert (done.returncode, done.stdout.strip()) == (0, bootstrap)


def test_kafka_secured_is_one_or_zero() -> None:
    done = kafka_sh("bootstrap", KAFKA_SECURED="yes")
    assert done.returncode != 0
    assert "KAFKA_SECURED must be 1" in done.stderr


def test_a_plaintext_instance_is_not_started_secured(tmp_path: Path) -> None:
    home = tmp_path / "kafka"
    (home / "data").mkdir(parents=True)
    (home / "server.properties").write_text("listeners=PLAINTEXT://127.0.0.1:9092,\n")
    (home / "data" / "meta.properties").write_text("formatted")
    done = kafka_sh(
        "start",
        KAFKA_SECURED="1",
        KAFKA_HOME_DIR=str(home),
        KAFKA_USERS_FILE=str(tmp_path / "users.env"),
    )
    assert done.returncode != 0
    assert "formatted without KAFKA_SECURED=1" in done.stderr


def test_the_secured_config_fills_every_placeholder_it_has() -> None:
    settings = "\n".join(
        line for line in SECURED.read_text("utf-8").splitlines() if not line.startswith("#")
    )
    script = KAFKA_SH.read_text("utf-8")
    filled = set(re.findall(r"s\|(@[A-Z_]+@)\|", script)) | {"@ADMIN_PASSWORD@"}
    assert "${config//@ADMIN_PASSWORD@/" in script
    assert set(re.findall(r"@[A-Z_]+@", settings)) <= filled


def test_the_secured_broker_refuses_what_no_acl_grants() -> None:
    settings = dict(
        line.split("=", 1)
        for line in SECURED.read_text("utf-8").splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert settings["allow.everyone.if.no.acl.found"] == "false"
    assert settings["super.users"] == "User:admin"
    assert settings["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert "PLAINTEXT:PLAINTEXT" not in settings["listener.security.protocol.map"]
