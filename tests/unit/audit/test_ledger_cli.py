"""`--from-ledger` on the command line: it reads the keys of crypto-shredding and the
audit's database URL, refuses unusable keys as a usage error, and changes nothing
without the flag."""

import pytest

from services.audit.cli import options_from
from services.audit.ledger_read import Ledgers
from shared.settings import LOCAL_DATABASE_URL
from tests.support.signing import SIGNING_ENV

AUDIT_URL = "postgresql://consent_audit_login:pw@db:5432/consent"
OWNER_URL = "postgresql://consent:pw@db:5432/consent"


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SIGNING_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AUDIT_DATABASE_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_the_topics_stay_the_default() -> None:
    assert options_from([]).from_ledger is None


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({"AUDIT_DATABASE_URL": AUDIT_URL, "DATABASE_URL": OWNER_URL}, AUDIT_URL),
        ({"DATABASE_URL": OWNER_URL}, OWNER_URL),
        ({}, LOCAL_DATABASE_URL),
    ],
)
def test_the_ledgers_are_opened_with_the_audits_own_role_when_set(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], url: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    setup = options_from(["--from-ledger"]).from_ledger

    assert setup is not None
    assert setup.database_url == url
    assert setup.ledgers == Ledgers()
    assert setup.erasure.pseudonyms().of("+79161234567")


def test_unusable_keys_are_a_usage_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ERASURE_INDEX_KEY")

    with pytest.raises(SystemExit) as exited:
        options_from(["--from-ledger"])

    assert exited.value.code == 2
    assert "--from-ledger: ERASURE_INDEX_KEY" in capsys.readouterr().err


def test_without_the_flag_no_key_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ERASURE_INDEX_KEY", "ERASURE_MASTER_KEYS", "ERASURE_ACTIVE_KEY"):
        monkeypatch.delenv(name)

    assert options_from([]).from_ledger is None
