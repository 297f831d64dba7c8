"""Says who is asking the consent API and what they may read (policy clause 5:
contact data used only for what was consented, and protected).

Each caller has a bearer token with scopes: `consent:read` for a subject's current
state, `consent:evidence` for their history with its evidence. The configuration
holds only each token's SHA-256, never the token (tokens are 256 random bits, so a
fast hash is as good as a slow one), in `CONSENT_API_TOKENS`:

    {"crm": {"sha256": "<64 hex digits>", "scopes": ["consent:read"]}, ...}

`python -m services.consent.tokens NAME SCOPE...` makes a token and prints it with
its configuration entry.

With no token configured the API answers loopback callers only, as the local
operator, and refuses everyone else: the contract's endpoints keep working on the
machine that runs them, and nothing is readable from further away until an
operator gives tokens."""

import hashlib
import hmac
import ipaddress
import secrets
import sys
from dataclasses import dataclass
from enum import StrEnum

import orjson


class Scope(StrEnum):
    READ = "consent:read"
    EVIDENCE = "consent:evidence"
    # Records a person's erasure request (docs/erasure.md): it stops every send to them.
    ERASURE = "consent:erasure"


class InvalidTokensError(ValueError):
    """CONSENT_API_TOKENS cannot be read; the message says where."""


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[Scope]


LOCAL_OPERATOR = Principal("local-operator (loopback, no tokens configured)", frozenset(Scope))
_TOKEN_PREFIX = "cst_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return _TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Tokens:
    by_hash: dict[str, Principal]

    @classmethod
    def parse(cls, setting: str) -> "Tokens":
        if not setting.strip():
            return cls({})
        try:
            table = orjson.loads(setting)
        except orjson.JSONDecodeError:
            raise InvalidTokensError("CONSENT_API_TOKENS is not JSON") from None
        if not isinstance(table, dict):
            raise InvalidTokensError("CONSENT_API_TOKENS must be a JSON object of names")
        by_hash: dict[str, Principal] = {}
        for name, entry in table.items():
            digest, scopes = _entry(name, entry)
            if digest in by_hash:
                raise InvalidTokensError(f"CONSENT_API_TOKENS: {name!r} repeats a token")
            by_hash[digest] = Principal(name, scopes)
        return cls(by_hash)

    @property
    def configured(self) -> bool:
        return bool(self.by_hash)

    def principal(self, token: str) -> Principal | None:
        """The token's holder, or None. Every configured hash is compared, in constant
        time each, so the answer's timing says nothing of which were close."""
        digest = token_hash(token)
        found = None
        for known, principal in self.by_hash.items():
            if hmac.compare_digest(known, digest):
                found = principal
        return found


def _entry(name: str, entry: object) -> tuple[str, frozenset[Scope]]:
    if not isinstance(entry, dict):
        raise InvalidTokensError(f"CONSENT_API_TOKENS: {name!r} must be an object")
    digest = entry.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64 or not _is_hex(digest):
        raise InvalidTokensError(f"CONSENT_API_TOKENS: {name!r} needs sha256, 64 hex digits")
    scopes = entry.get("scopes")
    known = {s.value for s in Scope}
    if not isinstance(scopes, list) or not scopes or not set(map(str, scopes)) <= known:
        raise InvalidTokensError(
            f"CONSENT_API_TOKENS: {name!r} needs scopes, a non-empty list of {sorted(known)}"
        )
    return digest.lower(), frozenset(Scope(s) for s in scopes)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str]) -> int:
    if len(argv) < 2 or any(s not in {x.value for x in Scope} for s in argv[1:]):
        print(
            "usage: python -m services.consent.tokens NAME SCOPE... "
            f"(scopes: {', '.join(s.value for s in Scope)})",
            file=sys.stderr,
        )
        return 2
    name, scopes = argv[0], argv[1:]
    token = new_token()
    entry = {name: {"sha256": token_hash(token), "scopes": scopes}}
    print(f"token (give it to {name}; it is not stored anywhere): {token}")
    print(f"CONSENT_API_TOKENS entry: {orjson.dumps(entry).decode()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
