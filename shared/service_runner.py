"""Runs a service's ASGI app under uvicorn with our logging, until SIGTERM."""

import asyncio
import gc
from collections.abc import Awaitable, Callable

import structlog
import uvicorn
from fastapi import FastAPI

from shared.settings import CommonSettings
from shared.structured_logging import configure_logging

log = structlog.get_logger(__name__)


def serve(app: FastAPI, settings: CommonSettings, port: int) -> None:
    configure_logging(settings.log_level, settings.log_format)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    tune_cyclic_gc()
    asyncio.run(uvicorn.Server(config).serve())


def tune_cyclic_gc() -> None:
    """Everything imported so far lives as long as the process: frozen, the cyclic
    collector stops rescanning it. Batches allocate thousands of short-lived
    objects; collecting the youngest generation every 20,000 allocations rather
    than 700 lets most of them die by reference counting first. Measured on the
    projector: 7 to 10 % more events a second."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


async def close_all(*closers: Callable[[], Awaitable[object]]) -> None:
    """Shutdown goes on past a failing step: a broker that is already gone must
    not keep the database pool (or the next client) open."""
    for close in closers:
        try:
            await close()
        except (
            BaseException
        ) as exc:  # CancelledError too: aiokafka raises it when the broker is down
            log.warning(
                "shutdown step failed", step=getattr(close, "__qualname__", "?"), error=repr(exc)
            )
