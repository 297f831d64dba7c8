"""Serves the liveness, readiness and metrics endpoints, the same on every service
(CONTRACT.md section 6)."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]


def ops_router(readiness: ReadinessCheck) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        try:
            checks = await readiness()
        except Exception as exc:  # readiness must answer, not raise
            return JSONResponse({"ready": False, "error": str(exc)}, status_code=503)
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


async def all_ready(*checks: Awaitable[bool]) -> bool:
    """Runs every check at once: the consume loop's probe of a handler's dependencies."""
    return all(await asyncio.gather(*checks))


async def database_ready(pool: Any) -> bool:
    try:
        async with asyncio.timeout(2):
            return bool(await pool.fetchval("SELECT 1") == 1)
    except Exception:
        return False


async def broker_ready(client: Any) -> bool:
    """Makes a metadata round trip: proves the broker answers, not only that a socket is open."""
    try:
        async with asyncio.timeout(2):
            await client.topics()
            return True
    except Exception:
        return False
