"""A small migration runner applies plain, versioned SQL files, once each.

    python -m shared.db.migrate [--root DIR]

Layout: `deploy/migrations/<schema>/NNN_name.sql`, one folder per service
schema. Every schema folder is visited in name order and, inside it, files in
version order (the number before the first underscore). Each applied file is
recorded in `public.schema_migrations(schema, version, applied_at)`, keyed by
(schema, version) where version is the number as written ("001"), so a file
is applied once even if it is renamed later.

- Each file runs in its own transaction together with its record: a failing
  file leaves nothing behind and the next run retries it.
- A session-level advisory lock serialises concurrent runners (`make infra-up`
  racing the tests' fixture): the second waits, then finds the work done.
- Files must create their own schema (`CREATE SCHEMA IF NOT EXISTS ...`);
  the runner does not set search_path, so write qualified names.
- A file cannot use statements that refuse to run in a transaction
  (CREATE INDEX CONCURRENTLY, ALTER SYSTEM, ...).

Connects to DATABASE_URL (default: the local cluster of deploy/local/postgres.sh),
the migration role that owns the schemas. The services never migrate: they refuse
to start on a schema behind their code (shared/db/migrated.py). The NOTICEs a file
raises (a service role it found missing) are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

LOCAL_DATABASE_URL = "postgresql://consent:consent@127.0.0.1:55432/consent"
DEFAULT_ROOT = Path(
    os.environ.get("MIGRATIONS_DIR")
    or Path(__file__).resolve().parents[2] / "deploy" / "migrations"
)

# Any constant shared by every runner; "consent_m" in ASCII.
_ADVISORY_LOCK_KEY = 0x636F6E73656E745F
_FILE_NAME = re.compile(r"^(?P<version>\d+)_[A-Za-z0-9_\-]+\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS public.schema_migrations (
    schema     text        NOT NULL,
    version    text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema, version)
)
"""
_RECORD = "INSERT INTO public.schema_migrations (schema, version) VALUES ($1, $2)"


class MigrationError(Exception):
    """The migration files are malformed or one of them failed."""


@dataclass(frozen=True)
class Migration:
    schema: str
    version: str
    path: Path

    @property
    def label(self) -> str:
        return f"{self.schema}/{self.path.name}"


def discover(root: Path) -> list[Migration]:
    """Finds the migrations under root, in the order they must run."""
    if not root.is_dir():
        # An installed package without its SQL must fail loudly, never start on an
        # empty schema: point MIGRATIONS_DIR at deploy/migrations.
        raise FileNotFoundError(f"no migrations folder at {root} (set MIGRATIONS_DIR)")
    found: list[Migration] = []
    for schema_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        seen: dict[int, Migration] = {}
        for path in sorted(schema_dir.iterdir()):
            if path.suffix != ".sql":
                continue
            match = _FILE_NAME.match(path.name)
            if match is None:
                raise MigrationError(
                    f"{path}: migration files are named NNN_name.sql (digits, underscore, name)"
                )
            number = int(match["version"])
            if number in seen:
                raise MigrationError(f"{path} and {seen[number].path} have the same version number")
            seen[number] = Migration(schema_dir.name, match["version"], path)
        found += [seen[number] for number in sorted(seen)]
    return found


async def _connect(dsn: str, wait_s: float) -> Any:
    """Connects, retrying for wait_s: a server that was just started may still
    be finishing recovery."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await asyncpg.connect(dsn)
        except (OSError, asyncpg.CannotConnectNowError):
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.5)


async def apply_migrations(
    dsn: str, root: Path | None = None, on_notice: Callable[[str], None] | None = None
) -> list[str]:
    """Applies the pending migrations under root (default deploy/migrations)
    and returns their labels ("schema/NNN_name.sql") in the order applied;
    `on_notice` gets the text of each NOTICE they raise."""
    migrations = discover(root if root is not None else DEFAULT_ROOT)
    conn = await _connect(dsn, wait_s=10)
    if on_notice is not None:
        conn.add_log_listener(lambda _conn, message: on_notice(message.message))
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _ADVISORY_LOCK_KEY)
        try:
            await conn.execute(_CREATE_TABLE)
            rows = await conn.fetch("SELECT schema, version FROM public.schema_migrations")
            done = {(r["schema"], r["version"]) for r in rows}
            for m in migrations:
                if (m.schema, m.version) in done:
                    continue
                sql = m.path.read_text(encoding="utf-8")
                try:
                    async with conn.transaction():
                        await conn.execute(sql)
                        await conn.execute(_RECORD, m.schema, m.version)
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"{m.label} failed: {type(exc).__name__}: {exc}") from exc
                applied.append(m.label)
        finally:
            # Closing the session would release the lock too; unlocking first
            # keeps a pooled or reused connection clean.
            if not conn.is_closed():
                await conn.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_LOCK_KEY)
    finally:
        await conn.close()
    return applied


def _print_notice(text: str) -> None:
    print(f"[migrate] {text}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description="Apply deploy/migrations to DATABASE_URL.")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="migrations folder")
    args = parser.parse_args()
    dsn = os.environ.get("DATABASE_URL") or LOCAL_DATABASE_URL
    try:
        applied = asyncio.run(apply_migrations(dsn, args.root, on_notice=_print_notice))
    except MigrationError as exc:
        print(f"[migrate] ERROR: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"[migrate] ERROR: cannot migrate the database: {exc}", file=sys.stderr)
        return 1
    for label in applied:
        print(f"[migrate] applied {label}", file=sys.stderr)
    print(f"[migrate] up to date ({len(applied)} applied now)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
