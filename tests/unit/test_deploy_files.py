"""Dockerfile and docker-compose.yml, checked without a Docker engine: the stack
they describe must keep the contract (its variables, ports and readiness)."""

import importlib.util
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

# CONTRACT.md sections 6 and 7.
PORTS = {"inbound": 8081, "consent": 8082, "dispatcher": 8083}
CONTRACT_ENV = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "DATABASE_URL",
    "WHATSAPP_APP_SECRET",
    "WHATSAPP_VERIFY_TOKEN",
    "LOG_LEVEL",
    "LOG_FORMAT",
)
ENV_PREFIX = {"inbound": "INBOUND_", "consent": "CONSENT_", "dispatcher": "DISPATCHER_"}
# docs/security.md: the owner's DATABASE_URL goes to `migrate` alone; each service
# that uses the database connects as the login roles of deploy/postgres/roles.sql.
# What a service refuses to start without, beyond the contract's variables: the keys
# of signed events and of the access records' pseudonyms.
KEYS_ENV = (
    "INBOUND_SIGNING_KEY",
    "DISPATCHER_SIGNING_KEY",
    "EVENT_VERIFY_KEYS",
    "PSEUDONYM_KEY",
    "ERASURE_INDEX_KEY",
    "ERASURE_MASTER_KEYS",
    "ERASURE_ACTIVE_KEY",
)
SERVICE_ENV = (*(var for var in CONTRACT_ENV if var != "DATABASE_URL"), *KEYS_ENV)
ROLE_URLS = {
    "inbound": {},
    "consent": {
        "CONSENT_PROJECTOR_DATABASE_URL": "consent_projector_login",
        "CONSENT_API_DATABASE_URL": "consent_api_login",
    },
    "dispatcher": {"DISPATCHER_DATABASE_URL": "consent_dispatcher_login"},
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
    return loaded


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text("utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _published(service: dict[str, Any]) -> set[tuple[int, int]]:
    """(host port, container port) pairs, from the short or the long syntax."""
    published = set()
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            published.add((int(port["published"]), int(port["target"])))
        else:
            *_, host, container = str(port).split(":")
            published.add((int(host), int(container.split("/")[0])))
    return published


def _command(value: str | list[str]) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def _exec_form(arguments: str) -> list[str]:
    parsed = yaml.safe_load(arguments)  # a JSON array is YAML too
    return [str(v) for v in parsed] if isinstance(parsed, list) else shlex.split(arguments)


def test_compose_defines_the_whole_stack(compose: dict[str, Any]) -> None:
    assert {"kafka", "postgres", "migrate", "provision", *PORTS} <= set(compose["services"])


@pytest.mark.parametrize("name", sorted(PORTS))
def test_service_gets_every_contract_variable(compose: dict[str, Any], name: str) -> None:
    env = _environment(compose["services"][name])
    missing = [var for var in SERVICE_ENV if not env.get(var)]
    assert not missing, f"{name} lacks {missing}"
    assert env["KAFKA_BOOTSTRAP_SERVERS"].split(":")[0] == "kafka"


@pytest.mark.parametrize("name", sorted(PORTS))
def test_service_connects_as_its_own_roles_never_the_owner(
    compose: dict[str, Any], name: str
) -> None:
    env = _environment(compose["services"][name])
    assert "DATABASE_URL" not in env
    for variable, login in ROLE_URLS[name].items():
        url = urlsplit(env[variable])
        assert (url.username, url.hostname, url.path) == (login, "postgres", "/consent")
    owner = _environment(compose["services"]["postgres"])["POSTGRES_USER"]
    assert not any(f"//{user}:" in value for value in env.values() for user in (owner, "consent"))


def test_only_migrate_holds_the_owners_url(compose: dict[str, Any]) -> None:
    migrate = compose["services"]["migrate"]
    assert _command(migrate["command"]) == ["python", "-m", "shared.db.migrate"]
    url = urlsplit(_environment(migrate)["DATABASE_URL"])
    assert (url.username, url.hostname, url.path) == ("consent", "postgres", "/consent")
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "build" in migrate


def test_postgres_superuser_only_initialises_the_roles(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    env = _environment(postgres)
    # The image's superuser is not the owner the migrations run as.
    assert env["POSTGRES_USER"] != "consent"
    assert env["POSTGRES_DB"] == "consent"
    init = (ROOT / "deploy" / "postgres" / "init-roles.sh").read_text("utf-8")
    mounts = dict(str(v).split(":", 2)[:2] for v in postgres["volumes"] if str(v).startswith("./"))
    assert mounts["./deploy/postgres/init-roles.sh"].startswith("/docker-entrypoint-initdb.d/")
    assert f"-f {mounts['./deploy/postgres/roles.sql']}" in init
    assert "NOSUPERUSER" in init
    # What init-roles.sh reads, compose passes.
    assert set(re.findall(r"\$(CONSENT_[A-Z_]+_PASSWORD)", init)) <= set(env)


@pytest.mark.parametrize("name", sorted(PORTS))
def test_a_role_password_is_the_one_its_role_was_made_with(
    compose: dict[str, Any], name: str
) -> None:
    made = _environment(compose["services"]["postgres"]).values()
    for variable in ROLE_URLS[name]:
        password = urlsplit(_environment(compose["services"][name])[variable]).password
        assert password in made


@pytest.mark.parametrize("name", ["kafka", "postgres", *sorted(PORTS)])
def test_every_port_is_published_on_loopback_only(compose: dict[str, Any], name: str) -> None:
    for port in compose["services"][name].get("ports") or []:
        if isinstance(port, dict):
            assert port.get("host_ip") == "127.0.0.1", port
        else:
            assert str(port).startswith("127.0.0.1:"), port


@pytest.mark.parametrize("name", sorted(PORTS))
def test_service_listens_beyond_its_container(compose: dict[str, Any], name: str) -> None:
    # The settings default to 127.0.0.1: a published port would lead nowhere.
    env = _environment(compose["services"][name])
    assert env.get(f"{ENV_PREFIX[name]}HTTP_HOST") == "0.0.0.0"


@pytest.mark.parametrize("name", sorted(PORTS))
def test_service_publishes_its_contract_port(compose: dict[str, Any], name: str) -> None:
    assert (PORTS[name], PORTS[name]) in _published(compose["services"][name])


@pytest.mark.parametrize("name", sorted(PORTS))
def test_service_health_is_its_readiness(compose: dict[str, Any], name: str) -> None:
    test = compose["services"][name]["healthcheck"]["test"]
    command = " ".join(_command(test))
    assert f":{PORTS[name]}/readyz" in command


@pytest.mark.parametrize("name", sorted(PORTS))
def test_service_runs_its_own_module(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    assert _command(service["command"]) == ["python", "-m", f"services.{name}"]
    assert importlib.util.find_spec(f"services.{name}.__main__") is not None
    assert "build" in service


@pytest.mark.parametrize("name", sorted(PORTS))
def test_service_starts_after_its_dependencies_are_ready(
    compose: dict[str, Any], name: str
) -> None:
    depends_on = compose["services"][name]["depends_on"]
    assert depends_on["kafka"]["condition"] == "service_healthy"
    assert depends_on["postgres"]["condition"] == "service_healthy"
    # The services check the schema, they no longer migrate it.
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    assert depends_on["provision"]["condition"] == "service_completed_successfully"


def test_provision_creates_the_topics_once_kafka_is_up(compose: dict[str, Any]) -> None:
    provision = compose["services"]["provision"]
    assert _command(provision["command"]) == ["python", "-m", "shared.kafka.provision"]
    env = _environment(provision)
    assert env["KAFKA_BOOTSTRAP_SERVERS"].split(":")[0] == "kafka"
    assert "KAFKA_PARTITIONS" in env
    assert provision["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_kafka_is_a_single_kraft_node_the_containers_can_reach(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = _environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    app_bootstrap = _environment(compose["services"]["dispatcher"])["KAFKA_BOOTSTRAP_SERVERS"]
    # The address the services bootstrap from is one the broker advertises back.
    assert any(listener.endswith(f"://{app_bootstrap}") for listener in advertised)
    # The dispatcher's transactions need a state log that fits one broker.
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "healthcheck" in kafka


def test_postgres_is_the_image_the_services_were_tried_with(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert str(postgres["image"]).startswith("postgres:15")
    assert "healthcheck" in postgres


def test_image_is_python_3_11_slim_with_the_package_installed(
    dockerfile: list[tuple[str, str]],
) -> None:
    assert dockerfile[0] == ("FROM", "python:3.11-slim")
    runs = " ".join(args for word, args in dockerfile if word == "RUN")
    assert re.search(r"pip install (\S+ )*\.(\s|$)", runs)
    copied = " ".join(args for word, args in dockerfile if word == "COPY")
    # `migrate` applies these and the services check them; a wheel does not carry them.
    assert "deploy/migrations" in copied


def test_image_runs_as_a_non_root_user(dockerfile: list[tuple[str, str]]) -> None:
    users = [args for word, args in dockerfile if word == "USER"]
    assert users, "no USER: the services would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    # Nothing after the last USER may switch back.
    last_user = max(i for i, (word, _) in enumerate(dockerfile) if word == "USER")
    assert all(word != "USER" for word, _ in dockerfile[last_user + 1 :])


def test_image_runs_a_service_module(dockerfile: list[tuple[str, str]]) -> None:
    commands = [_exec_form(args) for word, args in dockerfile if word in {"CMD", "ENTRYPOINT"}]
    assert commands
    command = commands[-1]
    assert command[:2] == ["python", "-m"]
    assert command[2] in {f"services.{name}" for name in PORTS}


def test_image_listens_beyond_localhost_by_default(dockerfile: list[tuple[str, str]]) -> None:
    env = " ".join(args for word, args in dockerfile if word == "ENV")
    for prefix in ENV_PREFIX.values():
        assert f"{prefix}HTTP_HOST=0.0.0.0" in env


def test_build_context_leaves_out_local_state() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".local", ".venv"} <= ignored
    assert any("__pycache__" in line for line in ignored)
