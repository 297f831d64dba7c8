"""Checks at startup that the database is migrated: the services no longer migrate it.

The migration role (DATABASE_URL) applies deploy/migrations before the services
start (`make infra-up`, `python -m shared.db.migrate`, compose's `migrate`); a
service's own role may not create anything, so a service on a schema behind its
code refuses to start and says what to run, rather than fail on its first query."""

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg

from shared.db.migrate import DEFAULT_ROOT, Migration, discover
from shared.db.pool import open_pool

MIGRATE_HINT = "run make infra-up or python -m shared.db.migrate"


class DatabaseNotMigratedError(RuntimeError):
    """The schema is behind the code, or this role may not tell."""


def missing(known: Sequence[Migration], recorded: Iterable[tuple[str, str]]) -> list[str]:
    """Labels of the migrations known to the code and not recorded as applied. A
    database ahead of the code (a migration it does not know) is not behind."""
    done = set(recorded)
    return [m.label for m in known if (m.schema, m.version) not in done]


async def missing_migrations(conn: Any, root: Path | None = None) -> list[str]:
    """Reads public.schema_migrations through `conn` (a pool or a connection)."""
    known = discover(root if root is not None else DEFAULT_ROOT)
    try:
        rows = await conn.fetch("SELECT schema, version FROM public.schema_migrations")
    except asyncpg.UndefinedTableError:
        return [m.label for m in known]
    return missing(known, ((r["schema"], r["version"]) for r in rows))


async def require_migrated(conn: Any, root: Path | None = None) -> None:
    try:
        pending = await missing_migrations(conn, root)
    except asyncpg.InsufficientPrivilegeError as exc:
        # The roles were created after the grants migration ran (docs/security.md).
        raise DatabaseNotMigratedError(
            f"database not migrated for this role ({exc}): {MIGRATE_HINT} as the owner after "
            "creating the service roles, or apply deploy/migrations/*/004_service_roles.sql again"
        ) from exc
    if pending:
        raise DatabaseNotMigratedError(
            f"database not migrated: {MIGRATE_HINT} (not applied: {', '.join(pending)})"
        )


async def open_migrated_pool(
    dsn: str, *, max_size: int, server_settings: Mapping[str, str] | None = None
) -> Any:
    """Opens a service's pool, or refuses (closing it) when the schema is behind."""
    pool = await open_pool(dsn, max_size=max_size, server_settings=server_settings)
    try:
        await require_migrated(pool)
    except BaseException:
        await pool.close()
        raise
    return pool
