"""A small threaded HTTP server for the Slack endpoint, run in a background thread.

Bolt's own ``App.start()`` blocks and binds every interface; we need ``start()``/``stop()`` that return, a
``/healthz`` route, a bounded request size and no tracebacks in responses. The standard library's threading
server is enough: Slack's traffic to one app is modest and every request is acknowledged in milliseconds, because
slow work runs after the ack on the adapter's worker pool.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

#: Slack's payloads are a few kilobytes; anything this large is not from Slack.
MAX_BODY_BYTES = 1024 * 1024


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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handle: Handler) -> None:
        self.handle_request_fn = handle
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "Blendwise"
    sys_version = ""
    timeout = 15  # a client that stalls mid-request does not hold a thread for long

    def do_GET(self) -> None:
        self._serve(b"")

    def do_POST(self) -> None:
        raw_length = self.headers.get("Content-Length", "0") or "0"
        if not raw_length.isdigit():
            self._send(HttpResult(400, b"bad Content-Length"))
            return
        length = int(raw_length)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(HttpResult(413, b"request too large"))
            return
        self._serve(self.rfile.read(length))

    def _serve(self, body: bytes) -> None:
        parts = urlsplit(self.path)
        request = HttpRequest(
            method=self.command,
            path=parts.path,
            query=parts.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        try:
            result = self.server.handle_request_fn(request)
        except Exception:
            logger.exception("Unexpected error while serving %s %s", self.command, parts.path)
            result = HttpResult(500, b"internal error")
        self._send(result)

    def _send(self, result: HttpResult) -> None:
        self.send_response(result.status)
        extra = {k.lower(): v for k, v in result.headers.items()}
        if "content-type" not in extra:
            self.send_header("Content-Type", result.content_type)
        for name, values in extra.items():
            if name == "content-length":
                continue
            for value in values:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(result.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(result.body)

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)


class BackgroundHTTPServer:
    """Serves ``handle`` on ``host:port`` from a daemon thread. ``port=0`` picks a free port."""

    def __init__(self, host: str, port: int, handle: Handler) -> None:
        self._address = (host, port)
        self._handle = handle
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        """Bind and start serving; returns the bound port."""
        self._server = _Server(self._address, self._handle)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="blendwise-slack-http",
            daemon=True,
        )
        self._thread.start()
        return self.port

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.server_address[1])

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
