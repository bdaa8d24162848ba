"""A fake Slack Web API: a real threaded HTTP server on 127.0.0.1 that answers in the shapes Slack documents.

Point any ``WebClient(base_url=fake.api_url)`` (or ``SLACK_API_URL``) at it. It implements the methods Blendwise
uses: auth.test, conversations.open, chat.postMessage, chat.update, chat.postEphemeral, users.info, views.publish,
views.open, conversations.history, files.getUploadURLExternal + the upload URL + files.completeUploadExternal
(what ``files_upload_v2`` calls), apps.connections.open (always refused: there is no WebSocket here) and
``response_url`` posts under ``/response/...``.

Every request is recorded (method, parameters or JSON body, headers without Authorization, the workspace its token
belongs to, the HTTP status answered, a monotonic timestamp) in a thread-safe list. Tests can make the next N calls
of a method fail with 429 + Retry-After, a 5xx, or a Slack error such as ``channel_not_found``. Messages are checked
against Block Kit's limits, so a renderer bug shows up as ``invalid_blocks`` just as it would in Slack.

Run it by hand to point ``blendwise run`` at it::

    python -m tests.fakes.slack_api --port 0
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_TEAM = "T0BLENDWS"
DEFAULT_TOKEN = "xoxb-fake-bot-token"
DEFAULT_APP_TOKEN = "xapp-fake-app-token"
BOT_USER_ID = "U0BLENDBOT"
BOT_ID = "B0BLENDBOT"
APP_ID = "A0BLENDWS"


@dataclass(frozen=True)
class Call:
    """One recorded request."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    team: str | None
    status: int
    at: float  # time.monotonic() when the request arrived
    path: str = ""
    raw: bytes = b""

    def json_param(self, name: str) -> Any:
        """A parameter that slack_sdk sends JSON-encoded in a form field (``files``, ``view`` in forms...)."""
        value = self.params.get(name)
        return json.loads(value) if isinstance(value, str) else value


@dataclass
class Failure:
    status: int
    error: str
    retry_after: float | None = None
    #: Store the message first, then answer with the failure: an answer lost after Slack did the work.
    after_store: bool = False


@dataclass
class Chaos:
    """Random faults on some methods: ``rate`` of the calls fail, as a 429, a 5xx before storing, or a 5xx after
    storing (the case that turns a blind retry into a duplicate)."""

    rate: float
    methods: tuple[str, ...]
    rng: random.Random
    retry_after: float = 1.0


@dataclass
class FakeUser:
    id: str
    name: str
    real_name: str
    tz: str = "UTC"
    email: str | None = None
    display_name: str = ""
    team_id: str = DEFAULT_TEAM
    is_bot: bool = False
    deleted: bool = False

    def to_api(self) -> dict[str, Any]:
        offset = 0
        try:
            from datetime import datetime
            from zoneinfo import ZoneInfo

            delta = datetime.now(ZoneInfo(self.tz)).utcoffset()
            offset = int(delta.total_seconds()) if delta is not None else 0
        except Exception:
            offset = 0
        profile: dict[str, Any] = {
            "real_name": self.real_name,
            "display_name": self.display_name,
            "real_name_normalized": self.real_name,
            "display_name_normalized": self.display_name,
        }
        if self.email is not None:
            profile["email"] = self.email
        return {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.name,
            "deleted": self.deleted,
            "real_name": self.real_name,
            "tz": self.tz,
            "tz_label": self.tz,
            "tz_offset": offset,
            "is_bot": self.is_bot,
            "profile": profile,
        }


# --------------------------------------------------------------------------------------------------------------
# Block Kit checks (the limits Slack enforces with invalid_blocks)

_BLOCK_TYPES = {
    "section",
    "header",
    "actions",
    "context",
    "divider",
    "image",
    "input",
    "rich_text",
    "file",
    "video",
    "markdown",
}


def _text_problems(
    where: str, obj: Any, limit: int, kinds: tuple[str, ...] = ("plain_text", "mrkdwn")
) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        return [f"{where}: must be a text object of type {'/'.join(kinds)}"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"{where}: text must be a non-empty string"]
    if len(text) > limit:
        return [f"{where}: text is {len(text)} characters, more than {limit}"]
    return []


def block_problems(blocks: Any, limit: int = 50) -> list[str]:
    """What Slack would reject in ``blocks`` (a subset of its checks, enough to catch renderer bugs)."""
    if not isinstance(blocks, list):
        return ["blocks must be an array"]
    problems: list[str] = []
    if len(blocks) > limit:
        problems.append(f"{len(blocks)} blocks, more than {limit}")
    action_ids: set[str] = set()
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
            problems.append(f"{where}: unknown block type")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in block_ids:
                problems.append(f"{where}: duplicate block_id {block_id}")
            block_ids.add(block_id)
        kind = block["type"]
        if kind == "header":
            problems += _text_problems(f"{where}.text", block.get("text"), 150, ("plain_text",))
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"{where}: section needs text or fields")
            if "text" in block:
                problems += _text_problems(f"{where}.text", block["text"], 3000)
            fields = block.get("fields", [])
            if len(fields) > 10:
                problems.append(f"{where}: {len(fields)} fields, more than 10")
            for j, item in enumerate(fields):
                problems += _text_problems(f"{where}.fields[{j}]", item, 2000)
        elif kind == "context":
            elements = block.get("elements", [])
            if not elements or len(elements) > 10:
                problems.append(f"{where}: context needs 1 to 10 elements")
            for j, item in enumerate(elements):
                if isinstance(item, dict) and item.get("type") in ("plain_text", "mrkdwn"):
                    problems += _text_problems(f"{where}.elements[{j}]", item, 3000)
        elif kind == "actions":
            elements = block.get("elements", [])
            if not elements or len(elements) > 25:
                problems.append(f"{where}: actions needs 1 to 25 elements")
            for j, element in enumerate(elements):
                problems += _element_problems(f"{where}.elements[{j}]", element, action_ids)
        elif kind == "input":
            problems += _text_problems(f"{where}.label", block.get("label"), 2000, ("plain_text",))
            element = block.get("element")
            if not isinstance(element, dict) or not element.get("action_id"):
                problems.append(f"{where}: input needs an element with an action_id")
    return problems


def _element_problems(where: str, element: Any, action_ids: set[str]) -> list[str]:
    if not isinstance(element, dict):
        return [f"{where}: element must be an object"]
    problems: list[str] = []
    action_id = element.get("action_id")
    if action_id is not None:
        if not isinstance(action_id, str) or len(action_id) > 255:
            problems.append(f"{where}: action_id must be a string of at most 255 characters")
        elif action_id in action_ids:
            problems.append(f"{where}: duplicate action_id {action_id}")
        else:
            action_ids.add(action_id)
    if element.get("type") == "button":
        problems += _text_problems(f"{where}.text", element.get("text"), 75, ("plain_text",))
        value = element.get("value")
        if value is not None and (not isinstance(value, str) or not value or len(value) > 2000):
            problems.append(f"{where}: value must be 1 to 2000 characters")
        if element.get("style") not in (None, "primary", "danger"):
            problems.append(f"{where}: style must be primary or danger")
    return problems


def view_problems(view: Any) -> list[str]:
    if not isinstance(view, dict):
        return ["view must be an object"]
    kind = view.get("type")
    if kind == "home":
        return block_problems(view.get("blocks"), 100)
    if kind != "modal":
        return ["view type must be home or modal"]
    problems = _text_problems("title", view.get("title"), 24, ("plain_text",))
    for key in ("submit", "close"):
        if key in view:
            problems += _text_problems(key, view[key], 24, ("plain_text",))
    metadata = view.get("private_metadata", "")
    if not isinstance(metadata, str) or len(metadata) > 3000:
        problems.append("private_metadata must be a string of at most 3000 characters")
    if len(str(view.get("callback_id", ""))) > 255:
        problems.append("callback_id longer than 255 characters")
    return problems + block_problems(view.get("blocks"), 100)


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


# --------------------------------------------------------------------------------------------------------------
# The fake


class FakeSlack:
    """A fake Slack Web API server.

    Args:
        token: the bot token accepted for the default workspace.
        team_id: the default workspace (team) id.
        app_token: the app-level token accepted by apps.connections.open.
        port: the port to bind (0 picks a free one).
        auto_users: answer users.info/conversations.open for unknown U... ids with a generated user.
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        team_id: str = DEFAULT_TEAM,
        app_token: str = DEFAULT_APP_TOKEN,
        port: int = 0,
        auto_users: bool = True,
        verbose: bool = False,
    ) -> None:
        self.token = token
        self.team_id = team_id
        self.app_token = app_token
        self.auto_users = auto_users
        self.verbose = verbose
        self._port = port
        self._lock = threading.RLock()
        self._tokens: dict[str, str] = {token: team_id}
        self._calls: list[Call] = []
        self._failures: dict[str, list[Failure]] = defaultdict(list)
        self._users: dict[str, FakeUser] = {}
        self._dms: dict[tuple[str, str], str] = {}
        self._dm_owner: dict[str, str] = {}
        self._messages: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._ephemeral: list[dict[str, Any]] = []
        self._home_views: dict[str, dict[str, Any]] = {}
        self._opened_views: list[dict[str, Any]] = []
        self._uploads: dict[str, dict[str, Any]] = {}
        self._shared: dict[str, dict[str, Any]] = {}
        self._counter = itertools.count(1)
        self._ts_base = int(time.time())
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._chaos: Chaos | None = None
        #: How many calls stored their message and then answered with a failure.
        self.stored_then_failed = 0
        #: Called with each message chat.postMessage stores, before the answer goes back (a test can kill the
        #: caller right there: the message exists, the caller never learns it).
        self.on_store: Callable[[str, dict[str, Any]], None] | None = None
        #: When each posted message was stored (monotonic seconds), to measure the rate a workspace saw.
        self.stored_at: list[float] = []
        self._channel_interval: float | None = None
        self._workspace_rate: float | None = None
        self._last_post: dict[str, float] = {}
        self._workspace_posts: dict[str, deque[float]] = defaultdict(deque)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeSlack:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", self._port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-slack", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "FakeSlack is not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The server root, e.g. ``http://127.0.0.1:51234/``."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def api_url(self) -> str:
        """The Web API base URL for ``WebClient(base_url=...)`` / ``SLACK_API_URL``."""
        return f"{self.url}api/"

    def response_url(self, name: str = "r") -> str:
        """A response_url to put in test payloads; posts to it are recorded as method ``response_url``."""
        return f"{self.url}response/{name}"

    # ------------------------------------------------------------------ configuration

    def add_workspace(self, team_id: str, token: str) -> None:
        """Accept ``token`` as the bot token of another workspace (multi-workspace tests)."""
        with self._lock:
            self._tokens[token] = team_id

    def add_user(
        self,
        user_id: str,
        name: str | None = None,
        *,
        real_name: str | None = None,
        tz: str = "UTC",
        email: str | None = None,
        display_name: str = "",
        team_id: str | None = None,
    ) -> FakeUser:
        user = FakeUser(
            id=user_id,
            name=name or user_id.lower(),
            real_name=real_name or (name or user_id).title(),
            tz=tz,
            email=email,
            display_name=display_name,
            team_id=team_id or self.team_id,
        )
        with self._lock:
            self._users[user_id] = user
        return user

    def fail_next(
        self,
        method: str,
        *,
        times: int = 1,
        status: int = 200,
        error: str = "internal_error",
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an error (``ok: false``)."""
        with self._lock:
            self._failures[method].extend(Failure(status, error, retry_after) for _ in range(times))

    def rate_limit(self, method: str, *, times: int = 1, retry_after: float = 1) -> None:
        """Answer the next calls of ``method`` with HTTP 429 and a Retry-After header, as Slack does."""
        self.fail_next(method, times=times, status=429, error="ratelimited", retry_after=retry_after)

    def server_error(self, method: str, *, times: int = 1, status: int = 500) -> None:
        self.fail_next(method, times=times, status=status, error="internal_error")

    def fail_after_store(self, method: str, *, times: int = 1, status: int = 500) -> None:
        """Do the next ``times`` calls of ``method`` (store the message), then answer with a 5xx anyway."""
        with self._lock:
            self._failures[method].extend(
                Failure(status, "internal_error", after_store=True) for _ in range(times)
            )

    def chaos(self, rate: float, *, seed: int = 0, methods: tuple[str, ...] = ("chat.postMessage",)) -> None:
        """Fail ``rate`` of the calls to ``methods`` at random (429, 5xx, or 5xx after storing), reproducibly."""
        self._chaos = Chaos(rate, methods, random.Random(seed))

    def limit_posts(self, *, per_channel_interval: float | None = 1.0, workspace_rate: float | None = None) -> None:
        """Enforce Slack's posting limits on chat.postMessage: answer 429 + Retry-After when a channel gets two
        posts closer than ``per_channel_interval`` or a workspace more than ``workspace_rate`` in any second."""
        self._channel_interval = per_channel_interval
        self._workspace_rate = workspace_rate

    def _over_limit(self, team: str, params: dict[str, Any], now: float) -> float | None:
        """Seconds to wait if this post breaks a limit, else None (and the post is counted)."""
        channel = str(params.get("channel") or "")
        with self._lock:
            if self._channel_interval is not None:
                last = self._last_post.get(channel)
                if last is not None and now - last < self._channel_interval:
                    return self._channel_interval - (now - last)
            if self._workspace_rate is not None:
                window = self._workspace_posts[team]
                while window and window[0] <= now - 1.0:
                    window.popleft()
                if len(window) >= self._workspace_rate:
                    return 1.0 - (now - window[0])
                window.append(now)
            self._last_post[channel] = now
        return None

    # ------------------------------------------------------------------ inspection

    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def ok_calls(self, method: str) -> list[Call]:
        return [c for c in self.calls(method) if c.status == 200]

    def dm_channel(self, user_id: str, team_id: str | None = None) -> str | None:
        with self._lock:
            return self._dms.get((team_id or self.team_id, user_id))

    def messages_in(self, channel: str) -> list[dict[str, Any]]:
        """Messages posted in ``channel``, oldest first."""
        with self._lock:
            return [dict(m) for m in self._messages.get(channel, [])]

    def messages_to(self, user_id: str, team_id: str | None = None) -> list[dict[str, Any]]:
        """Messages in the app's DM with ``user_id``, oldest first."""
        channel = self.dm_channel(user_id, team_id)
        return self.messages_in(channel) if channel else []

    def ephemeral_messages(self, user_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(m) for m in self._ephemeral if user_id is None or m["user"] == user_id]

    def home_view(self, user_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._home_views.get(user_id)

    def opened_views(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._opened_views)

    def uploads(self) -> list[dict[str, Any]]:
        """Uploaded files: id, filename, title, content (bytes), channel (once completed)."""
        with self._lock:
            return [dict(u) for u in self._uploads.values()]

    def responses(self) -> list[Call]:
        """Posts to response_url paths."""
        return self.calls("response_url")

    def wait_for(
        self,
        method: str,
        count: int = 1,
        *,
        timeout: float = 5.0,
        where: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        """Poll (bounded) until ``count`` successful calls of ``method`` matching ``where`` were recorded."""
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.calls(method) if c.status == 200 and (where is None or where(c))]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                seen = ", ".join(f"{c.method}:{c.status}" for c in self.calls()) or "nothing"
                raise AssertionError(f"expected {count} x {method} within {timeout}s; recorded: {seen}")
            time.sleep(0.01)

    def reset(self) -> None:
        """Forget recorded calls and planned failures (state such as messages is kept)."""
        with self._lock:
            self._calls.clear()
            self._failures.clear()

    # ------------------------------------------------------------------ request handling

    def _next_ts(self) -> str:
        n = next(self._counter)
        return f"{self._ts_base + n // 1_000_000}.{n % 1_000_000:06d}"

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)
        if self.verbose:
            summary = {
                k: v for k, v in call.params.items() if k in ("channel", "user", "users", "text", "ts")
            }
            print(f"[fake-slack] {call.status} {call.method} {json.dumps(summary)[:200]}", file=sys.stderr)

    def _take_failure(self, method: str) -> Failure | None:
        with self._lock:
            queue = self._failures.get(method)
            return queue.pop(0) if queue else None

    def handle_api(
        self, method: str, params: dict[str, Any], headers: dict[str, str], raw: bytes, path: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Answer one Web API request: (HTTP status, JSON body, extra headers)."""
        token = _bearer(headers) or params.get("token")
        team = self._tokens.get(token) if isinstance(token, str) else None
        safe_headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        params = {k: v for k, v in params.items() if k != "token"}

        def answer(
            status: int, body: dict[str, Any], extra: dict[str, str] | None = None
        ) -> tuple[int, dict[str, Any], dict[str, str]]:
            now = time.monotonic()
            self._record(Call(method, params, safe_headers, team, status, now, path, raw))
            return status, body, extra or {}

        failure = self._take_failure(method)
        chaos = self._chaos
        if failure is None and chaos is not None and method in chaos.methods and team is not None:
            with self._lock:
                roll, kind = chaos.rng.random(), chaos.rng.choice(("429", "500", "stored-500"))
            if roll < chaos.rate:
                if kind == "429":
                    failure = Failure(429, "ratelimited", chaos.retry_after)
                else:
                    failure = Failure(500, "internal_error", after_store=kind == "stored-500")
        if method == "chat.postMessage" and team is not None and (failure is None or failure.after_store):
            wait = self._over_limit(team, params, time.monotonic())
            if wait is not None:
                failure = Failure(429, "ratelimited", max(1, round(wait + 0.5)))
        if failure is not None and failure.after_store and team is not None:
            handler = getattr(self, "_api_" + method.replace(".", "_"), None)
            if handler is not None:
                with suppress(_ApiError):
                    handler(team, params)
                    with self._lock:
                        self.stored_then_failed += 1
        if failure is not None:
            extra = {"Retry-After": f"{failure.retry_after:g}"} if failure.retry_after is not None else {}
            return answer(failure.status, {"ok": False, "error": failure.error}, extra)
        if method == "apps.connections.open":
            if token != self.app_token:
                return answer(200, {"ok": False, "error": "invalid_auth"})
            return answer(200, {"ok": False, "error": "socket_mode_not_supported_by_fake"})
        if token is None:
            return answer(200, {"ok": False, "error": "not_authed"})
        if team is None:
            return answer(200, {"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "_api_" + method.replace(".", "_"), None)
        if handler is None:
            return answer(200, {"ok": False, "error": "unknown_method"})
        try:
            body = handler(team, params)
        except _ApiError as err:
            body = {"ok": False, "error": err.error, **err.extra}
        return answer(200, body)

    def share_file(
        self,
        name: str,
        content: bytes,
        *,
        user: str = "U0LEAD",
        mimetype: str = "text/plain",
        size: int | None = None,
        channel: str | None = None,
        text: str = "",
    ) -> dict[str, Any]:
        """A file a person shared (in a message): returns the file object a message event lists (``id``, ``name``).

        ``files.info`` answers its metadata and ``url_private_download`` serves ``content`` only to a request
        carrying a bot token of the team in ``Authorization: Bearer`` (Slack's sign-in page otherwise, as HTML).
        ``size`` overrides the size files.info reports (to play a big video without sending one). With ``channel``
        the share is a message in that conversation (``text``, the file, a new ``ts``): ``conversations.history``
        lists it and ``files.info`` names it under ``shares.private`` (DMs) or ``shares.public``, as Slack does.
        """
        file_id = f"F{next(self._counter):08d}"
        shares: dict[str, Any] = {}
        if channel is not None:
            ts = self._next_ts()
            scope = "private" if channel.startswith(("D", "G")) else "public"
            shares = {scope: {channel: [{"ts": ts, "reply_count": 0, "team_id": self.team_id}]}}
            message = {"type": "message", "user": user, "text": text, "ts": ts,
                       "files": [{"id": file_id, "name": name, "mimetype": mimetype}]}  # fmt: skip
            with self._lock:
                self._messages.setdefault(channel, []).append(message)
        with self._lock:
            self._shared[file_id] = {
                "shares": shares,
                "id": file_id,
                "name": name,
                "title": name,
                "mimetype": mimetype,
                "filetype": name.rsplit(".", 1)[-1] if "." in name else "text",
                "size": len(content) if size is None else size,
                "user": user,
                "url_private": f"{self.url}files-pri/{self.team_id}-{file_id}/{name}",
                "url_private_download": f"{self.url}files-pri/{self.team_id}-{file_id}/download/{name}",
                "content": content,
            }
        return {"id": file_id, "name": name, "mimetype": mimetype}

    def handle_download(self, path: str, headers: dict[str, str]) -> tuple[int, bytes, str]:
        """GET a shared file's private URL: (status, body, content type)."""
        token = _bearer(headers)
        team = self._tokens.get(token) if token else None
        file_id = path.split("/")[2].split("-", 1)[-1] if path.count("/") >= 3 else ""
        with self._lock:
            shared = self._shared.get(file_id)
        authorised = shared is not None and team is not None
        self._record(
            Call("download", {"file_id": file_id, "authorised": authorised}, {}, team, 200, time.monotonic(), path, b"")
        )
        if shared is None:
            return 404, b"not found", "text/plain"
        if not authorised:
            return 200, b"<!DOCTYPE html><html><body>Sign in to Slack</body></html>", "text/html; charset=utf-8"
        return 200, shared["content"], shared["mimetype"]

    def handle_upload(self, file_id: str, raw: bytes) -> int:
        with self._lock:
            upload = self._uploads.get(file_id)
            if upload is not None:
                upload["content"] = raw
        status = 200 if upload is not None else 404
        self._record(
            Call(
                "upload",
                {"file_id": file_id, "length": len(raw)},
                {},
                None,
                status,
                time.monotonic(),
                "",
                raw,
            )
        )
        return status

    def handle_response_url(self, path: str, raw: bytes, headers: dict[str, str]) -> int:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        problems = block_problems(body["blocks"]) if isinstance(body, dict) and "blocks" in body else []
        status = 400 if problems else 200
        self._record(Call("response_url", body, dict(headers), None, status, time.monotonic(), path, raw))
        return status

    # ------------------------------------------------------------------ API methods

    def _user(self, team: str, user_id: str) -> FakeUser:
        with self._lock:
            user = self._users.get(user_id)
            if user is None and self.auto_users and user_id.startswith(("U", "W")):
                user = self._users[user_id] = FakeUser(
                    user_id, user_id.lower(), f"User {user_id}", team_id=team
                )
        if user is None:
            raise _ApiError("user_not_found")
        return user

    def _channel_for(self, team: str, channel: Any) -> str:
        if not isinstance(channel, str) or not channel:
            raise _ApiError("channel_not_found")
        if channel.startswith(("U", "W")):  # posting to a user id lands in the app's DM with them
            return self._open_dm(team, channel)
        if not channel.startswith(("C", "G", "D")):
            raise _ApiError("channel_not_found")
        return channel

    def _open_dm(self, team: str, user_id: str) -> str:
        self._user(team, user_id)
        with self._lock:
            key = (team, user_id)
            if key not in self._dms:
                channel = f"D{len(self._dms) + 1:08d}"
                self._dms[key] = channel
                self._dm_owner[channel] = user_id
            return self._dms[key]

    def _check_message(self, params: dict[str, Any]) -> None:
        blocks = params.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
            params["blocks"] = blocks
        if not params.get("text") and not blocks:
            raise _ApiError("no_text")
        if blocks is not None:
            problems = block_problems(blocks)
            if problems:
                raise _ApiError("invalid_blocks", errors=problems)
        metadata = params.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
            params["metadata"] = metadata
        if metadata is not None and (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("event_type"), str)
            or not isinstance(metadata.get("event_payload"), dict)
        ):
            raise _ApiError("invalid_metadata_format")

    def _api_auth_test(self, team: str, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{team.lower()}.fake-slack.test/",
            "team": f"Fake Team {team}",
            "user": "blendwise",
            "team_id": team,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _api_conversations_open(self, team: str, params: dict[str, Any]) -> dict[str, Any]:
        users = str(params.get("users") or "").split(",")
        if len(users) != 1 or not users[0]:
            raise _ApiError("users_list_not_supplied" if not users[0] else "not_supported_by_fake")
        channel = self._open_dm(team, users[0])
        return {"ok": True, "channel": {"id": channel}}

    def _api_chat_postMessage(self, team: str, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_for(team, params.get("channel"))
        self._check_message(params)
        ts = self._next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "text": params.get("text", ""),
            "ts": ts,
            "team": team,
        }
        if params.get("blocks") is not None:
            message["blocks"] = params["blocks"]
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        if params.get("metadata") is not None:
            message["metadata"] = params["metadata"]
        with self._lock:
            self._messages[channel].append(message)
            self.stored_at.append(time.monotonic())
        if self.on_store is not None:
            self.on_store(channel, message)
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _api_chat_update(self, team: str, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_for(team, params.get("channel"))
        self._check_message(params)
        with self._lock:
            for message in self._messages.get(channel, []):
                if message["ts"] == params.get("ts"):
                    message["text"] = params.get("text", "")
                    message["blocks"] = params.get("blocks", [])
                    message["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
                    if params.get("metadata") is not None:
                        message["metadata"] = params["metadata"]
                    return {"ok": True, "channel": channel, "ts": message["ts"], "text": message["text"]}
        raise _ApiError("message_not_found")

    def _api_chat_postEphemeral(self, team: str, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_for(team, params.get("channel"))
        self._check_message(params)
        user = self._user(team, str(params.get("user") or ""))
        ts = self._next_ts()
        with self._lock:
            self._ephemeral.append({"channel": channel, "user": user.id, "ts": ts, **params})
        return {"ok": True, "message_ts": ts}

    def _api_users_info(self, team: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "user": self._user(team, str(params.get("user") or "")).to_api()}

    def _api_views_publish(self, team: str, params: dict[str, Any]) -> dict[str, Any]:
        view = params.get("view")
        if isinstance(view, str):
            view = params["view"] = json.loads(view)
        user = self._user(team, str(params.get("user_id") or ""))
        problems = view_problems(view)
        if problems:
            raise _ApiError("invalid_arguments", response_metadata={"messages": problems})
        stored = {"id": f"V{next(self._counter):08d}", **(view or {})}
        with self._lock:
            self._home_views[user.id] = stored
        return {"ok": True, "view": stored}

    def _api_views_open(self, team: str, params: dict[str, Any]) -> dict[str, Any]:
        view = params.get("view")
        if isinstance(view, str):
            view = params["view"] = json.loads(view)
        if not params.get("trigger_id"):
            raise _ApiError("invalid_arguments")
        if str(params["trigger_id"]).startswith("expired"):
            raise _ApiError("expired_trigger_id")
        problems = view_problems(view)
        if problems:
            raise _ApiError("invalid_arguments", response_metadata={"messages": problems})
        stored = {"id": f"V{next(self._counter):08d}", **(view or {})}
        with self._lock:
            self._opened_views.append(stored)
        return {"ok": True, "view": stored}

    def _api_conversations_history(self, team: str, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_for(team, params.get("channel"))
        limit = int(params.get("limit") or 100)
        with_metadata = _truthy(params.get("include_all_metadata"))
        latest = params.get("latest")
        inclusive = _truthy(params.get("inclusive"))
        with self._lock:
            messages = [
                dict(m)
                for m in reversed(self._messages.get(channel, []))
                if latest is None or float(m["ts"]) < float(latest) or (inclusive and m["ts"] == str(latest))
            ][:limit]
        if not with_metadata:
            for message in messages:
                message.pop("metadata", None)
        return {"ok": True, "messages": messages, "has_more": False, "response_metadata": {"next_cursor": ""}}

    def _api_conversations_replies(self, team: str, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_for(team, params.get("channel"))
        ts = str(params.get("ts") or "")
        limit = int(params.get("limit") or 100)
        with_metadata = _truthy(params.get("include_all_metadata"))
        with self._lock:
            thread = [
                dict(m)
                for m in self._messages.get(channel, [])
                if m["ts"] == ts or m.get("thread_ts") == ts
            ]
        if not thread:
            raise _ApiError("thread_not_found")
        if not with_metadata:
            for message in thread:
                message.pop("metadata", None)
        return {"ok": True, "messages": thread[:limit], "has_more": False}

    def _api_files_info(self, team: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            shared = self._shared.get(str(params.get("file") or ""))
        if shared is None:
            raise _ApiError("file_not_found")
        return {"ok": True, "file": {k: v for k, v in shared.items() if k != "content"}}

    def _api_files_getUploadURLExternal(self, team: str, params: dict[str, Any]) -> dict[str, Any]:
        filename, length = params.get("filename"), params.get("length")
        if not filename or not str(length or "").isdigit():
            raise _ApiError("invalid_arguments")
        file_id = f"F{next(self._counter):08d}"
        with self._lock:
            self._uploads[file_id] = {
                "id": file_id,
                "filename": filename,
                "length": int(str(length)),
                "content": None,
                "title": None,
                "channel": None,
            }
        return {"ok": True, "upload_url": f"{self.url}upload/{file_id}", "file_id": file_id}

    def _api_files_completeUploadExternal(self, team: str, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files")
        files = json.loads(files) if isinstance(files, str) else files
        if not isinstance(files, list) or not files:
            raise _ApiError("invalid_arguments")
        channel_id = params.get("channel_id")
        channel = self._channel_for(team, channel_id) if channel_id else None
        completed = []
        with self._lock:
            for item in files:
                upload = self._uploads.get(str(item.get("id")))
                if upload is None or upload["content"] is None:
                    raise _ApiError("file_not_found")
                upload["title"] = item.get("title") or upload["filename"]
                upload["channel"] = channel
                completed.append({"id": upload["id"], "name": upload["filename"], "title": upload["title"]})
            if channel is not None:
                self._messages[channel].append(
                    {
                        "type": "message",
                        "subtype": "file_share",
                        "user": BOT_USER_ID,
                        "bot_id": BOT_ID,
                        "text": params.get("initial_comment") or "",
                        "ts": self._next_ts(),
                        "files": completed,
                        **({"thread_ts": params["thread_ts"]} if params.get("thread_ts") else {}),
                    }
                )
        return {"ok": True, "files": completed}


class _ApiError(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


def _bearer(headers: dict[str, str]) -> str | None:
    for key, value in headers.items():
        if key.lower() == "authorization" and value.startswith("Bearer "):
            return value[len("Bearer ") :].strip()
    return None


def _params(query: str, raw: bytes, content_type: str) -> dict[str, Any]:
    params: dict[str, Any] = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
    media = content_type.split(";", 1)[0].strip().lower()
    if not raw:
        return params
    if media == "application/json":
        body = json.loads(raw)
        if isinstance(body, dict):
            params.update(body)
    else:
        params.update({k: v[0] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()})
    return params


class _Handler(BaseHTTPRequestHandler):
    fake: FakeSlack

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = dict(self.headers.items())
        path = parts.path
        if path.startswith("/api/"):
            try:
                params = _params(parts.query, raw, self.headers.get("Content-Type", ""))
            except ValueError:
                self._send(400, {"ok": False, "error": "invalid_json"})
                return
            status, body, extra = self.fake.handle_api(path[len("/api/") :], params, headers, raw, path)
            self._send(status, body, extra)
        elif path.startswith("/files-pri/") and self.command == "GET":
            status, data, kind = self.fake.handle_download(path, headers)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif path.startswith("/upload/") and self.command == "POST":
            status = self.fake.handle_upload(path[len("/upload/") :], raw)
            self._send_text(status, f"OK - {len(raw)}" if status == 200 else "not found")
        elif path.startswith("/response/") and self.command == "POST":
            self._send_text(self.fake.handle_response_url(path, raw, headers), "ok")
        elif path == "/_fake/calls":
            calls = [
                {"method": c.method, "status": c.status, "team": c.team, "params": c.params}
                for c in self.fake.calls()
            ]
            self._send(200, {"calls": calls})
        else:
            self._send_text(404, "not found")

    def _send(self, status: int, body: dict[str, Any], extra: dict[str, str] | None = None) -> None:
        data = json.dumps(body, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    # A sender posts from a pool of threads: the default listen backlog of 5 would reset connections under load,
    # which real Slack never does.
    request_queue_size = 128


@contextmanager
def running(**kwargs: Any) -> Iterator[FakeSlack]:
    """``with running() as fake:`` starts a FakeSlack and stops it afterwards."""
    fake = FakeSlack(**kwargs).start()
    try:
        yield fake
    finally:
        fake.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a fake Slack Web API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="port to bind (0 picks a free one)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="bot token to accept")
    parser.add_argument("--team", default=DEFAULT_TEAM, help="workspace (team) id")
    parser.add_argument("--quiet", action="store_true", help="do not log each call to stderr")
    args = parser.parse_args(argv)
    fake = FakeSlack(token=args.token, team_id=args.team, port=args.port, verbose=not args.quiet).start()
    print(f"SLACK_API_URL={fake.api_url}", flush=True)
    print(f"SLACK_BOT_TOKEN={fake.token}", flush=True)
    print(
        f"# recorded calls: {fake.url}_fake/calls ; response_url base: {fake.url}response/ ; Ctrl-C to stop",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
