"""Serves the liveness, readiness and metrics endpoints, the same on every service
(CONTRACT.md section 6)."""

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = structlog.get_logger(__name__)

# A check's result, or a probe that gives it: a probe runs on its own, so one that
# raises fails only itself and is named in `failing`.
Check = bool | Callable[[], bool | Awaitable[bool]]
ReadinessCheck = Callable[[], Awaitable[Mapping[str, Check]]]
# Names the failure when the readiness function itself raises, before any check.
READINESS = "readiness"


async def _outcome(name: str, check: Check) -> bool:
    """Runs one check; an exception is logged and counts as not ready. Its text stays
    in the log: a probe's error can name hosts, users or a connection string."""
    try:
        result = check() if callable(check) else check
        if inspect.isawaitable(result):
            result = await result
        return bool(result)
    except Exception:  # readiness must answer, not raise
        log.exception("readiness check raised", check=name)
        return False


async def readiness_report(readiness: ReadinessCheck) -> tuple[bool, dict[str, Any]]:
    """Returns whether the service is ready and the body of /readyz: every check by
    name, and the names of those that failed, never an exception's text."""
    try:
        named = await readiness()
    except Exception:  # readiness must answer, not raise
        log.exception("readiness check raised", check=READINESS)
        named = {READINESS: False}
    outcomes = await asyncio.gather(*(_outcome(name, check) for name, check in named.items()))
    checks = dict(zip(named, outcomes, strict=True))
    failing = [name for name, ok in checks.items() if not ok]
    return not failing, {"ready": not failing, "checks": checks, "failing": failing}


def ops_router(readiness: ReadinessCheck) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        ready, body = await readiness_report(readiness)
        return JSONResponse(body, status_code=200 if ready else 503)

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def service_apps(
    title: str, lifespan: Any, readiness: ReadinessCheck, *, ops_on_public_port: bool
) -> tuple[FastAPI, FastAPI]:
    """The public app (the service's own routes, no docs) and the admin app (metrics,
    health, readiness, and the public app's OpenAPI document and docs), served on the
    admin listener by shared/service_runner.py."""
    public = FastAPI(
        title=title, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    if ops_on_public_port:
        public.include_router(ops_router(readiness))
    admin = FastAPI(title=f"{title} (admin)", docs_url=None, redoc_url=None, openapi_url=None)
    admin.include_router(ops_router(readiness))

    @admin.get("/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(_public_openapi(public, title))

    @admin.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{title} API")

    return public, admin


def _public_openapi(public: FastAPI, title: str) -> dict[str, Any]:
    return get_openapi(title=title, version=public.version, routes=public.routes)


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
