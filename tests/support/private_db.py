"""A database of a test module's own, migrated as `make infra-up` migrates the shared one.

The shared database's `consent.tracking` belongs to whatever consent service
runs beside the tests: a projection written from a test, or a rebuild, would
make that service skip records on its next assignment."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import asyncpg
import pytest

from shared.db.migrate import apply_migrations
from tests.support.stack import Stack


@asynccontextmanager
async def private_database(stack: Stack) -> AsyncIterator[str]:
    """The URL of a fresh, migrated database; dropped after. Skips the test where
    the role may not create databases."""
    async with database_of_our_own(stack.database_url) as url:
        yield url


@asynccontextmanager
async def database_of_our_own(owner_url: str, *, migrate: bool = True) -> AsyncIterator[str]:
    """A fresh database beside `owner_url`'s, owned by its role, migrated unless told
    not to (a database the services must refuse); dropped after."""
    name = f"consent_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(owner_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.InsufficientPrivilegeError:
        pytest.skip("the database role may not CREATE DATABASE (a private projection is needed)")
    finally:
        await admin.close()
    try:
        url = urlsplit(owner_url)._replace(path=f"/{name}").geturl()
        if migrate:
            await apply_migrations(url)
        yield url
    finally:
        admin = await asyncpg.connect(owner_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
