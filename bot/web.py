"""The HTTP tier: a small ASGI application served by uvicorn on a background thread.

The core owns the server and three things every deployment needs: ``GET /healthz`` (liveness for a load balancer),
``GET /metrics`` (Prometheus, see :mod:`bot.metrics`) and a bounded request size. Platforms contribute their own
routes (the Slack adapter its ``/slack/events``) as plain handlers of :class:`HttpRequest` -> :class:`HttpResult`,
so nothing here knows a platform. Handlers are synchronous (they verify signatures and hand slow work to a pool
after the ack) and run on uvicorn's thread pool, never on the event loop.

Why uvicorn rather than ``http.server``: HTTP/1.1 keep-alive, proper request parsing and timeouts, graceful
shutdown that lets in-flight requests finish, and a server people already operate behind a proxy.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot import metrics

logger = logging.getLogger(__name__)

#: Platform payloads are a few kilobytes; anything this large is not from a platform.
MAX_BODY_BYTES = 1024 * 1024
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, list[str]] = field(default_factory=dict)


Handler = Callable[[HttpRequest], HttpResult]


class WebApp:
    """The ASGI application: exact-path routing to handlers, plus health and metrics.

    Args:
        routes: path -> handler, contributed by adapters.
        health: extra facts for ``/healthz`` (e.g. ``{"mode": "http"}``), or a callable returning them.
    """

    def __init__(
        self,
        routes: Mapping[str, Handler] | None = None,
        *,
        health: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.routes: dict[str, Handler] = dict(routes or {})
        self._health = health

    def add(self, path: str, handler: Handler) -> None:
        if path in self.routes or path in (HEALTH_PATH, METRICS_PATH):
            raise ValueError(f"the HTTP route {path} is already taken")
        self.routes[path] = handler

    def handle(self, request: HttpRequest) -> HttpResult:
        """Serve one request (synchronously; also used directly by tests)."""
        if request.path == HEALTH_PATH:
            if request.method not in ("GET", "HEAD"):
                return HttpResult(405, b"method not allowed", headers={"Allow": ["GET"]})
            facts = self._health() if callable(self._health) else (self._health or {})
            import json

            return HttpResult(200, json.dumps({"ok": True, **facts}).encode(), content_type="application/json")
        if request.path == METRICS_PATH:
            if request.method not in ("GET", "HEAD"):
                return HttpResult(405, b"method not allowed", headers={"Allow": ["GET"]})
            return HttpResult(200, metrics.exposition(), content_type=metrics.CONTENT_TYPE)
        handler = self.routes.get(request.path)
        if handler is None:
            return HttpResult(404, b"not found")
        return handler(request)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        result: HttpResult | None = None
        declared = headers.get("content-length", "")
        if declared and not declared.isdigit():
            result = HttpResult(400, b"bad Content-Length")
        elif declared and int(declared) > MAX_BODY_BYTES:
            result = HttpResult(413, b"request too large")
        body = b""
        if result is None:
            chunks: list[bytes] = []
            size, more = 0, True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    result = HttpResult(413, b"request too large")
                    break
                chunks.append(chunk)
                more = message.get("more_body", False)
            body = b"".join(chunks)
        if result is None:
            request = HttpRequest(
                method=scope["method"],
                path=scope["path"],
                query=scope.get("query_string", b"").decode("latin-1"),
                headers=headers,
                body=body,
            )
            try:
                # Handlers block (database, signature checks); they run on the loop's thread pool.
                result = await asyncio.get_running_loop().run_in_executor(None, self.handle, request)
            except Exception:
                logger.exception("Unexpected error while serving %s %s", scope["method"], scope["path"])
                result = HttpResult(500, b"internal error")
        extra = {k.lower(): v for k, v in result.headers.items() if k.lower() != "content-length"}
        raw: list[tuple[bytes, bytes]] = []
        if "content-type" not in extra:
            raw.append((b"content-type", result.content_type.encode("latin-1")))
        for name, values in extra.items():
            raw.extend((name.encode("latin-1"), v.encode("latin-1")) for v in values)
        raw.append((b"content-length", str(len(result.body)).encode()))
        await send({"type": "http.response.start", "status": result.status, "headers": raw})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else result.body})


class WebServer:
    """Serves a :class:`WebApp` with uvicorn from a daemon thread. ``port=0`` picks a free port.

    ``start()`` returns once the socket is listening, so callers (tests, ``blendwise run``) can connect at once.
    """

    def __init__(self, host: str, port: int, app: WebApp) -> None:
        self.host = host
        self._requested_port = port
        self.app = app
        self._server: Any = None  # uvicorn.Server, imported lazily
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def start(self) -> int:
        """Bind and start serving; returns the bound port.

        The socket is bound here, in the caller's thread, so a port already in use fails ``start()`` itself with
        an error naming the address instead of failing silently in the background.
        """
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            # Several `blendwise run` processes on one host may share the port; the kernel balances connections
            # between them (as the standard library's HTTP server allowed before). Only sockets that also ask for
            # it, owned by the same user, can join.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"cannot listen on {self.host}:{self._requested_port}: {exc.strerror}") from None
        sock.listen(128)
        self._socket = sock
        import uvicorn  # here, not at import time: a worker process that serves no HTTP never loads it

        config = uvicorn.Config(
            self.app,
            log_config=None,  # our logging set-up stays in charge
            access_log=False,
            lifespan="off",
            timeout_keep_alive=15,
            timeout_graceful_shutdown=5,
            server_header=False,
        )
        # uvicorn installs signal handlers only on the main thread; on ours the runtime keeps owning SIGTERM.
        self._server = uvicorn.Server(config)
        server = self._server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])), name="blendwise-http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not server.started:
            raise RuntimeError(f"the HTTP server on {self.host}:{self.port} did not start")
        return self.port

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("server not started")
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        """A local base URL, e.g. ``http://127.0.0.1:3000`` (a wildcard bind is reached through loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(self.host, self.host)  # noqa: S104
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (bounded), and close the socket. Safe to call twice."""
        if self._server is None:
            return
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = None
        self._thread = None
        self._socket = None
