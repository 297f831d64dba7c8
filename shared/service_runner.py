"""Runs a service's ASGI app under uvicorn with our logging, until SIGTERM."""

import asyncio

import uvicorn
from fastapi import FastAPI

from shared.settings import CommonSettings
from shared.structured_logging import configure_logging


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
    asyncio.run(uvicorn.Server(config).serve())
