"""Names the variables that connect each service as its own PostgreSQL role
(docs/security.md). Each takes precedence over DATABASE_URL, the owner's URL,
which stays the fallback: DATABASE_URL alone still runs the whole system."""

from collections.abc import Mapping

PROJECTOR_URL = "CONSENT_PROJECTOR_DATABASE_URL"
API_URL = "CONSENT_API_DATABASE_URL"
DISPATCHER_URL = "DISPATCHER_DATABASE_URL"
# Read by no service (the audit replays Kafka): the read-only role of people and
# tools, printed by `deploy/local/postgres.sh role-urls` with the others.
AUDIT_URL = "AUDIT_DATABASE_URL"
ROLE_URL_VARIABLES = (PROJECTOR_URL, API_URL, DISPATCHER_URL, AUDIT_URL)


def without_role_urls(env: Mapping[str, str]) -> dict[str, str]:
    """`env` without the role URLs: a process pointed at another database through
    DATABASE_URL must not keep a role URL inherited for the usual one, which wins."""
    return {k: v for k, v in env.items() if k not in ROLE_URL_VARIABLES}
