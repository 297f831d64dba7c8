"""Lets a caller read a subject only with a token of the right scope
(services/consent/tokens.py), and records every read, who read whom and when,
without the raw identifier: the accountability GDPR Art. 5(2) asks of us."""

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import HTTPException, Request

from services.consent.tokens import LOCAL_OPERATOR, Principal, Scope, Tokens, is_loopback
from shared.pseudonyms import Pseudonymizer


def _refused(status: int, reason: str, detail: str, error: str) -> HTTPException:
    # RFC 6750: the challenge names the scheme and what was wrong.
    return HTTPException(
        status_code=status,
        detail={"reason": reason, "detail": detail},
        headers={"WWW-Authenticate": f'Bearer error="{error}"'},
    )


def authorise(tokens: Tokens, scope: Scope) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the caller's principal when it may read with `scope`."""

    async def caller(request: Request) -> Principal:
        if not tokens.configured:
            if is_loopback(request.client.host if request.client else None):
                return LOCAL_OPERATOR
            raise _refused(
                401,
                "missing_token",
                "no API tokens are configured (CONSENT_API_TOKENS): only callers on "
                "this machine are answered",
                "invalid_request",
            )
        header = request.headers.get("authorization")
        if header is None:
            raise _refused(
                401, "missing_token", "send Authorization: Bearer <token>", "invalid_request"
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _refused(
                401, "invalid_token", "Authorization must be 'Bearer <token>'", "invalid_request"
            )
        principal = tokens.principal(token.strip())
        if principal is None:
            raise _refused(401, "invalid_token", "the token is not known", "invalid_token")
        if scope not in principal.scopes:
            raise _refused(
                403,
                "insufficient_scope",
                f"this token may not do what needs {scope.value}",
                "insufficient_scope",
            )
        return principal

    return caller


class AccessLog:
    """Appends to consent.access_log; a read is answered only once its record is kept."""

    def __init__(self, pool: Any, pseudonyms: Pseudonymizer) -> None:
        self.pool = pool
        self.pseudonyms = pseudonyms

    async def record(
        self, principal: Principal, scope: Scope, subject: str, identifiers: list[str], at: datetime
    ) -> None:
        # One pseudonym per identifier of the person: "who read X" finds the read
        # whichever of their identifiers it went by.
        await self.pool.execute(
            "INSERT INTO consent.access_log (at, principal, scope, subject, identifiers)"
            " VALUES ($1, $2, $3, $4, $5)",
            at,
            principal.name,
            scope.value,
            self.pseudonyms.of(subject),
            sorted({self.pseudonyms.of(i) for i in identifiers}),
        )
