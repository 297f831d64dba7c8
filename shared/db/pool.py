"""Opens the asyncpg pool of every service: sized to the work, JSON decoded as Python."""

from collections.abc import Mapping
from typing import Any

import asyncpg
import orjson


async def _init_connection(conn: Any) -> None:
    for kind in ("jsonb", "json"):
        await conn.set_type_codec(
            kind,
            encoder=lambda value: orjson.dumps(value).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def open_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 5,
    server_settings: Mapping[str, str] | None = None,
) -> Any:
    """`server_settings`: session settings of every connection (a service's own)."""
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        command_timeout=30,
        server_settings=dict(server_settings or {}),
    )
