"""The service roles without a server (docs/security.md): which URL each service
connects with, how the startup check tells a schema behind its code, and that
the roles the grants name are the roles the scripts make."""

import re
from pathlib import Path

import pytest

from services.consent.settings import ConsentSettings
from services.dispatcher.settings import DispatcherSettings
from shared.db.migrate import Migration
from shared.db.migrated import missing
from shared.db.roles import ROLE_URL_VARIABLES, without_role_urls
from tests.support.db_roles import on_database, parse_role_urls
from tests.support.signing import SIGNING_ENV

ROOT = Path(__file__).resolve().parents[2]
OWNER = "postgresql://consent:consent@db:5432/consent"
GROUPS = {"consent_projector", "consent_api", "consent_dispatcher", "consent_audit"}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ROLE_URL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in SIGNING_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_URL", OWNER)
    return monkeypatch


def test_database_url_alone_connects_every_service_as_the_owner(env: pytest.MonkeyPatch) -> None:
    consent = ConsentSettings()
    assert (consent.projector_url, consent.api_url) == (OWNER, OWNER)
    assert DispatcherSettings().service_database_url == OWNER


def test_a_role_url_wins_over_database_url(env: pytest.MonkeyPatch) -> None:
    env.setenv("CONSENT_PROJECTOR_DATABASE_URL", "postgresql://projector@db/consent")
    env.setenv("CONSENT_API_DATABASE_URL", "postgresql://api@db/consent")
    env.setenv("DISPATCHER_DATABASE_URL", "postgresql://dispatcher@db/consent")
    consent = ConsentSettings()
    assert consent.projector_url == "postgresql://projector@db/consent"
    assert consent.api_url == "postgresql://api@db/consent"
    # The owner's stays for what runs as the owner (the rebuild).
    assert consent.database_url == OWNER
    assert DispatcherSettings().service_database_url == "postgresql://dispatcher@db/consent"


def _migration(schema: str, version: str) -> Migration:
    return Migration(schema, version, Path(f"{schema}/{version}_x.sql"))


def test_a_schema_behind_the_code_names_what_is_missing() -> None:
    known = [_migration("consent", "001"), _migration("consent", "002")]
    assert missing(known, [("consent", "001")]) == ["consent/002_x.sql"]


def test_a_schema_ahead_of_the_code_is_not_behind() -> None:
    known = [_migration("consent", "001")]
    assert missing(known, [("consent", "001"), ("consent", "002")]) == []


def test_a_process_pointed_elsewhere_drops_inherited_role_urls() -> None:
    env = {"DATABASE_URL": OWNER, "DISPATCHER_DATABASE_URL": "x", "PATH": "/bin"}
    assert without_role_urls(env) == {"DATABASE_URL": OWNER, "PATH": "/bin"}


def test_role_urls_are_read_as_postgres_sh_prints_them() -> None:
    printed = "CONSENT_API_DATABASE_URL=postgresql://a:b@127.0.0.1:55432/consent\n\nnoise\n"
    assert parse_role_urls(printed) == {
        "CONSENT_API_DATABASE_URL": "postgresql://a:b@127.0.0.1:55432/consent"
    }


def test_a_role_url_follows_a_private_database() -> None:
    role = "postgresql://consent_api_login:pw@127.0.0.1:55432/consent"
    private = "postgresql://consent:consent@127.0.0.1:55432/consent_test_1"
    assert on_database(role, private) == (
        "postgresql://consent_api_login:pw@127.0.0.1:55432/consent_test_1"
    )


def _granted_roles(sql: str) -> set[str]:
    return set(re.findall(r"\('(consent_[a-z_]+)',", sql))


def test_the_grants_go_to_the_group_roles_the_scripts_make() -> None:
    made = (ROOT / "deploy" / "postgres" / "roles.sql").read_text("utf-8")
    assert all(f"'{group}'" in made for group in GROUPS)
    for path in (ROOT / "deploy" / "migrations").glob("*/*_service_roles.sql"):
        assert _granted_roles(path.read_text("utf-8")) <= GROUPS, path


def test_the_log_is_append_only_for_every_role_but_the_owner() -> None:
    consent = (ROOT / "deploy/migrations/consent/004_service_roles.sql").read_text("utf-8")
    assert "REVOKE UPDATE, DELETE, TRUNCATE ON consent.events FROM PUBLIC" in consent
    revoked = set(re.findall(r"\('(consent_[a-z_]+)', +'REVOKE UPDATE, DELETE, TRUNCATE", consent))
    assert revoked == GROUPS
