"""Tokens are configured by their hashes with scopes, and refused clearly when not."""

import pytest

from services.consent.tokens import (
    InvalidTokensError,
    Scope,
    Tokens,
    is_loopback,
    main,
    new_token,
    token_hash,
)


def test_a_token_is_known_by_its_hash_alone_and_names_its_holder_and_scopes() -> None:
    token = new_token()
    tokens = Tokens.parse(
        f'{{"crm": {{"sha256": "{token_hash(token)}", "scopes": ["consent:read"]}}}}'
    )

    holder = tokens.principal(token)

    assert holder is not None
    assert (holder.name, holder.scopes) == ("crm", frozenset({Scope.READ}))
    assert tokens.principal(token + "x") is None
    assert token not in repr(tokens)


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("not json", "is not JSON"),
        ("[]", "a JSON object of names"),
        ('{"crm": "abc"}', "'crm' must be an object"),
        ('{"crm": {"sha256": "abc", "scopes": ["consent:read"]}}', "64 hex digits"),
        ('{"crm": {"sha256": "' + "a" * 64 + '", "scopes": []}}', "needs scopes"),
        ('{"crm": {"sha256": "' + "a" * 64 + '", "scopes": ["admin"]}}', "needs scopes"),
        (
            '{"a": {"sha256": "' + "a" * 64 + '", "scopes": ["consent:read"]},'
            ' "b": {"sha256": "' + "A" * 64 + '", "scopes": ["consent:read"]}}',
            "'b' repeats a token",
        ),
    ],
)
def test_an_unreadable_configuration_is_refused_naming_what(setting: str, says: str) -> None:
    with pytest.raises(InvalidTokensError, match=says):
        Tokens.parse(setting)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("10.0.0.1", False), (None, False)],
)
def test_loopback_is_judged_by_address(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_command_prints_a_token_and_its_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crm", "consent:read"]) == 0
    out = capsys.readouterr().out
    token = out.split("): ")[1].split()[0]
    entry = out.split("CONSENT_API_TOKENS entry: ")[1].strip()
    assert Tokens.parse(entry).principal(token) is not None
    assert main(["crm", "admin"]) == 2
