"""/readyz names what is not ready and keeps why in the log: an exception's text can
carry a host, a user or a connection string, and the endpoint is unauthenticated."""

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from shared.http_ops import Check, ops_router

SECRET = "password authentication failed for user consent at db-primary.corp:5432"


def readyz(checks: Mapping[str, Check] | Exception) -> Any:
    async def readiness() -> Mapping[str, Check]:
        if isinstance(checks, Exception):
            raise checks
        return checks

    app = FastAPI()
    app.include_router(ops_router(readiness))
    return TestClient(app, raise_server_exceptions=False).get("/readyz")


async def _database() -> bool:
    raise OSError(SECRET)


async def _up() -> bool:
    return True


def test_every_check_passing_is_ready() -> None:
    response = readyz({"broker": True, "database": _up, "consumer_assigned": lambda: True})
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "checks": {"broker": True, "database": True, "consumer_assigned": True},
        "failing": [],
    }


def test_a_check_that_is_false_is_named() -> None:
    response = readyz({"broker": True, "deciding": False})
    assert response.status_code == 503
    assert response.json()["checks"]["deciding"] is False
    assert response.json()["failing"] == ["deciding"]


def test_a_check_that_raises_is_named_and_its_text_only_logged() -> None:
    with capture_logs() as logs:
        response = readyz({"database": _database, "broker": _up})
    assert response.status_code == 503
    assert response.json() == {
        "ready": False,
        "checks": {"database": False, "broker": True},
        "failing": ["database"],
    }
    assert SECRET not in response.text
    assert [(entry["event"], entry["check"]) for entry in logs] == [
        ("readiness check raised", "database")
    ]


def test_a_readiness_function_that_raises_names_itself_without_its_text() -> None:
    with capture_logs() as logs:
        response = readyz(RuntimeError(SECRET))
    assert response.status_code == 503
    assert response.json() == {
        "ready": False,
        "checks": {"readiness": False},
        "failing": ["readiness"],
    }
    assert SECRET not in response.text
    assert [entry["check"] for entry in logs] == ["readiness"]
