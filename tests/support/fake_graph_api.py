"""A local stand-in for the WhatsApp Cloud API's messages endpoint.

A real HTTP server (FastAPI under uvicorn, on 127.0.0.1 and a free port, in a
thread of its own so it answers whatever the test's event loop is doing). It
checks the path and the bearer token as Graph does, answers per recipient from
a script (e.g. 429 twice, then 200), and records every request it receives.

    with FakeGraphApi(token="t", phone_number_id="123") as graph:
        graph.script("79161234567", Reply(429, retry_after="1"), Reply(500))
        ...  # POST {graph.url}/v21.0/123/messages
        graph.requests_for("79161234567")
"""

import asyncio
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response


@dataclass(frozen=True)
class Reply:
    """One scripted answer; status 200 builds the Cloud API's success body."""

    status: int = 200
    retry_after: str | None = None
    code: int | None = None  # the Graph error code; by default one that fits the status
    message: str | None = None
    delay: float = 0.0

    def error(self) -> dict[str, Any]:
        code, message = _TYPICAL.get(self.status, _TYPICAL[400])
        return _error(self.code or code, self.message or message)


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    at: float  # time.monotonic()
    status: int  # what the fake answered
    message_id: str | None = None


@dataclass
class FakeGraphApi:
    token: str = "test-access-token"
    phone_number_id: str = "100200300400500"
    version: str = "v21.0"
    requests: list[Received] = field(default_factory=list)
    _scripts: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self._app(), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    # ------------------------------------------------------------ scripting

    def script(self, wa_id: str, *replies: Reply) -> None:
        """Answers for the next requests to `wa_id` (the body's `to`); 200 after them."""
        with self._lock:
            self._scripts[wa_id].extend(replies)

    def requests_for(self, wa_id: str) -> list[Received]:
        with self._lock:
            return [
                r for r in self.requests if isinstance(r.body, dict) and r.body.get("to") == wa_id
            ]

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "FakeGraphApi":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake Graph API did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> "FakeGraphApi":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ------------------------------------------------------------ the server

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE"])
        async def anything(path: str, request: Request) -> Response:
            received_at = time.monotonic()
            raw = await request.body()
            try:
                body = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                body = None
            status, payload, headers, delay = self._answer(request, body)
            if delay:
                # A slow answer (timeouts): the server thread's own loop sleeps.
                await asyncio.sleep(delay)
            message_id = provider_id(payload)
            with self._lock:
                self.requests.append(
                    Received(
                        request.method,
                        "/" + path,
                        {k.lower(): v for k, v in request.headers.items()},
                        body,
                        raw,
                        received_at,
                        status,
                        message_id,
                    )
                )
            return Response(orjson.dumps(payload), status, headers, media_type="application/json")

        return app

    def _answer(
        self, request: Request, body: Any
    ) -> tuple[int, dict[str, Any], dict[str, str], float]:
        expected_path = f"/{self.version}/{self.phone_number_id}/messages"
        if request.method != "POST" or request.url.path != expected_path:
            return 400, _error(100, "Unsupported post request", "GraphMethodException"), {}, 0
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return 401, _error(190, "Invalid OAuth access token", "OAuthException"), {}, 0
        if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
            return 400, _error(100, "(#100) The parameter messaging_product is required."), {}, 0
        to = str(body.get("to", ""))
        with self._lock:
            queue = self._scripts.get(to)
            reply = queue.popleft() if queue else Reply()
        headers = {"Retry-After": reply.retry_after} if reply.retry_after is not None else {}
        if reply.status == 200:
            payload = {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": f"wamid.{uuid.uuid4().hex}"}],
            }
            return 200, payload, headers, reply.delay
        return reply.status, reply.error(), headers, reply.delay


def provider_id(payload: Any) -> str | None:
    try:
        return str(payload["messages"][0]["id"])
    except (KeyError, IndexError, TypeError):
        return None


_TYPICAL = {
    400: (100, "(#100) Invalid parameter"),
    429: (130429, "(#130429) Rate limit hit"),
    500: (1, "An unknown error occurred"),
    503: (2, "Service temporarily unavailable"),
}


def _error(code: int, message: str, kind: str = "OAuthException") -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": kind,
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": message},
            "fbtrace_id": f"A{uuid.uuid4().hex[:22]}",
        }
    }
