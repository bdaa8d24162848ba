"""A fake Discord: REST under ``/api/v10`` and a gateway websocket, served by aiohttp on 127.0.0.1.

discord.py connects to it as it does to Discord once ``Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY`` point
here: ``GET /users/@me`` and ``/oauth2/applications/@me`` on login, then the gateway handshake (HELLO, IDENTIFY ->
READY with a ``resume_gateway_url`` back to this server, one GUILD_CREATE per guild), heartbeats ACKed, RESUME
replaying missed events. The fake keeps the platform rules that matter to an adapter, so that a test fails where
Discord would fail:

* gateway events are only sent to a session whose IDENTIFY intents cover them, and message text is blanked without
  the MESSAGE_CONTENT intent (unless the bot is mentioned), as Discord does;
* messages are checked against Discord's limits (embeds, components, unique ``custom_id``) and ``enforce_nonce``
  returns the first message instead of a duplicate;
* an interaction must be answered within ``interaction_deadline`` seconds, and only once (40060 otherwise);
* a 429 carries ``retry_after`` in JSON, the ``X-RateLimit-*`` headers and a ``Via`` header (discord.py treats a 429
  without ``Via`` as a Cloudflare ban).

Every REST call is recorded (method, path, query, JSON or multipart body). Tests drive the client with sync helpers
(``press_button``, ``invoke_command``, ``post_message``, ``voice_state``, ``event_interest`` ...) that can be called
from any thread: the server runs its own event loop in a thread, so a test may block on a sync adapter call
without starving the server.

Run ``python -m tests.fakes.discord_server`` to serve a default world and print the URLs to point
``DISCORD_API_URL`` / ``DISCORD_GATEWAY_URL`` at. A small control API under ``/_fake/`` (``GET calls``, ``GET world``,
``POST press``, ``POST command``, ``POST message``, ``POST voice``, ``POST interest``, ``POST rate_limit``) drives
it from outside a test.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import secrets
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1420070400000
T = TypeVar("T")

# Gateway intents (https://discord.com/developers/docs/events/gateway#gateway-intents).
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_VOICE_STATES = 1 << 7
GUILD_MESSAGES = 1 << 9
DIRECT_MESSAGES = 1 << 12
MESSAGE_CONTENT = 1 << 15
GUILD_SCHEDULED_EVENTS = 1 << 16

EVENT_INTENTS: dict[str, int] = {
    "GUILD_CREATE": GUILDS,
    "CHANNEL_CREATE": GUILDS,
    "THREAD_CREATE": GUILDS,
    "THREAD_UPDATE": GUILDS,
    "VOICE_STATE_UPDATE": GUILD_VOICE_STATES,
    "GUILD_SCHEDULED_EVENT_CREATE": GUILD_SCHEDULED_EVENTS,
    "GUILD_SCHEDULED_EVENT_UPDATE": GUILD_SCHEDULED_EVENTS,
    "GUILD_SCHEDULED_EVENT_DELETE": GUILD_SCHEDULED_EVENTS,
    "GUILD_SCHEDULED_EVENT_USER_ADD": GUILD_SCHEDULED_EVENTS,
    "GUILD_SCHEDULED_EVENT_USER_REMOVE": GUILD_SCHEDULED_EVENTS,
    "MESSAGE_UPDATE": GUILD_MESSAGES,
    "GUILD_MEMBERS_CHUNK": 0,
    "INTERACTION_CREATE": 0,
}

# Channel types.
TEXT, DM, VOICE, PUBLIC_THREAD, STAGE, FORUM = 0, 1, 2, 11, 13, 15

# Discord's message limits.
MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_EMBED_TOTAL = 6000
MAX_DESCRIPTION = 4096
MAX_TITLE = 256
MAX_FIELDS = 25
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_FOOTER = 2048
MAX_ROWS = 5
MAX_ROW_WIDTH = 5
MAX_CUSTOM_ID = 100
MAX_LABEL = 80


class FakeDiscordError(Exception):
    """A test asked the fake for something that does not exist (an unknown message, an unregistered command)."""


class ApiError(Exception):
    """An error response, shaped like Discord's: ``{"message": ..., "code": ...}`` (plus ``errors`` for 50035)."""

    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


def invalid_form(problem: str) -> ApiError:
    return ApiError(400, 50035, "Invalid Form Body", {"_problem": problem})


@dataclass
class RecordedFile:
    field: str
    filename: str
    content_type: str
    content: bytes


@dataclass
class RecordedCall:
    """One REST request as the fake received it. ``path`` is relative to ``/api/v10``."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: list[RecordedFile]
    status: int = 0
    at: float = 0.0

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data["files"] = [
            {"field": f.field, "filename": f.filename, "size": len(f.content)} for f in self.files
        ]
        return data


@dataclass
class Fault:
    """Answer the next ``times`` calls matching ``method`` and ``pattern`` with an error instead."""

    method: str
    pattern: re.Pattern[str]
    status: int
    times: int
    retry_after: float = 1.0
    is_global: bool = False
    code: int = 0
    message: str = ""


@dataclass
class World:
    """The ids of the default world, so tests can name things."""

    application_id: int = 810000000000000001
    bot_id: int = 810000000000000001
    guild_id: int = 820000000000000001
    text_channel_id: int = 830000000000000001
    forum_channel_id: int = 830000000000000002
    voice_channel_id: int = 830000000000000003
    stage_channel_id: int = 830000000000000004
    lead_role_id: int = 840000000000000001
    admin_role_id: int = 840000000000000002
    lead_role: str = "Facilitator"
    admin_role: str = "Blendwise Admin"
    learner_ids: list[int] = field(default_factory=lambda: [850000000000000001 + i for i in range(5)])
    lead_id: int = 850000000000000010
    admin_id: int = 850000000000000011
    outsider_id: int = 850000000000000099


@dataclass
class Session:
    """One gateway connection's session state (kept after a disconnect so that a RESUME can replay)."""

    session_id: str
    intents: int = 0
    identify: dict[str, Any] = field(default_factory=dict)
    seq: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    compressor: Any = None
    resumed: int = 0


@dataclass
class InteractionRecord:
    id: int
    token: str
    type: int
    payload: dict[str, Any]
    dispatched_at: float
    responses: list[dict[str, Any]] = field(default_factory=list)
    acked: bool = False
    original_message_id: int | None = None
    modal: dict[str, Any] | None = None


def snowflake_now(counter: itertools.count[int]) -> int:
    return ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (next(counter) & 0x3FFFFF)


def iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(ts if ts is not None else time.time(), UTC).isoformat()


class FakeDiscord:
    """The fake Discord server. Use as a context manager, or ``start()``/``stop()``.

    Args:
        token: the bot token clients must present (``Authorization: Bot <token>``).
        world: the ids of the default guild, channels, roles and members.
        interaction_deadline: seconds within which an interaction must get its first callback (Discord: 3).
        heartbeat_interval_ms: what HELLO tells the client.
        now: the fake's idea of the current time, for refusing Scheduled Events that start in the past as Discord
            does (50035); tests under a virtual clock set it (``fake.now = clock.now``). Real time by default.
    """

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        world: World | None = None,
        interaction_deadline: float = 3.0,
        heartbeat_interval_ms: int = 41250,
        host: str = "127.0.0.1",
        port: int = 0,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.token = token
        self.now: Callable[[], datetime] = now or (lambda: datetime.now(UTC))
        self.world = world or World()
        self.interaction_deadline = interaction_deadline
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.host = host
        self.port = port
        self._ids = itertools.count(1)
        self._lock = threading.Condition()
        self._calls: list[RecordedCall] = []
        self._faults: list[Fault] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.sessions: dict[str, Session] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.guilds: dict[int, dict[str, Any]] = {}
        self.members: dict[tuple[int, int], dict[str, Any]] = {}
        self.channels: dict[int, dict[str, Any]] = {}
        self.messages: dict[int, dict[str, Any]] = {}
        self.nonces: dict[tuple[int, str], int] = {}
        self.dm_channels: dict[int, int] = {}
        self.voice_states: dict[tuple[int, int], dict[str, Any]] = {}
        self.scheduled_events: dict[int, dict[str, Any]] = {}
        self.event_users: dict[int, list[int]] = {}
        self.commands: dict[int | None, list[dict[str, Any]]] = {}
        self.interactions: dict[int, InteractionRecord] = {}
        self.cdn: dict[str, bytes] = {}
        self._build_world()

    # ----------------------------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> FakeDiscord:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Serve on a free port in a background thread; returns once the socket is bound."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # pragma: no cover - reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-discord", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Discord did not start within 10 s")
        if failure:
            raise failure[0]

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None
        self._thread = None

    async def _serve(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/ws", self._gateway)
        app.router.add_get("/ws-resume", self._gateway)
        app.router.add_route("*", "/_fake/{op}", self._control)
        app.router.add_get("/cdn/{key:.*}", self._cdn)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _shutdown(self) -> None:
        for session in self.sessions.values():
            if session.ws is not None and not session.ws.closed:
                await session.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run ``coro`` on the server's loop from any other thread."""
        if self._loop is None:
            raise RuntimeError("fake Discord is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """What ``Route.BASE`` should be (``DISCORD_API_URL``)."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """What ``DiscordWebSocket.DEFAULT_GATEWAY`` should be (``DISCORD_GATEWAY_URL``)."""
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def resume_gateway_url(self) -> str:
        """READY's ``resume_gateway_url``: a different path, so tests can see that a RESUME went there."""
        return f"ws://{self.host}:{self.port}/ws-resume"

    # ----------------------------------------------------------------------------------------------- the world
    def _sf(self) -> int:
        return snowflake_now(self._ids)

    def _build_world(self) -> None:
        w = self.world
        self.add_user(w.bot_id, "blendwise", bot=True)
        gid = w.guild_id
        self.guilds[gid] = {
            "id": str(gid),
            "name": "Blendwise Academy",
            "owner_id": str(w.admin_id),
            "roles": [
                self._role(gid, "@everyone", 0, permissions=0x0000_0000_0006_4C40),
                self._role(w.lead_role_id, w.lead_role, 1),
                self._role(w.admin_role_id, w.admin_role, 2),
            ],
        }
        self.add_channel(gid, w.text_channel_id, "cohort-a", TEXT)
        self.add_channel(gid, w.forum_channel_id, "cohort-b-forum", FORUM)
        self.add_channel(gid, w.voice_channel_id, "Live Room", VOICE)
        self.add_channel(gid, w.stage_channel_id, "Stage", STAGE)
        self.add_member(gid, w.bot_id)
        for n, uid in enumerate(w.learner_ids, start=1):
            self.add_user(uid, f"learner{n}", global_name=f"Learner {n}")
            self.add_member(gid, uid)
        self.add_user(w.lead_id, "lead", global_name="Lena Lead")
        self.add_member(gid, w.lead_id, roles=[w.lead_role_id])
        self.add_user(w.admin_id, "admin", global_name="Ada Admin")
        self.add_member(gid, w.admin_id, roles=[w.admin_role_id])
        self.add_user(w.outsider_id, "outsider")

    @staticmethod
    def _role(role_id: int, name: str, position: int, permissions: int = 0) -> dict[str, Any]:
        return {
            "id": str(role_id),
            "name": name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": position,
            "permissions": str(permissions),
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }

    def add_user(
        self, user_id: int, username: str, *, global_name: str | None = None, bot: bool = False
    ) -> None:
        self.users[user_id] = {
            "id": str(user_id),
            "username": username,
            "global_name": global_name,
            "discriminator": "0",
            "avatar": None,
            "public_flags": 0,
            **({"bot": True} if bot else {}),
        }

    def add_member(self, guild_id: int, user_id: int, *, roles: list[int] | None = None) -> None:
        self.members[(guild_id, user_id)] = {
            "roles": [str(r) for r in roles or []],
            "nick": None,
            "avatar": None,
            "joined_at": iso(),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }

    def add_channel(
        self, guild_id: int, channel_id: int, name: str, kind: int, **extra: Any
    ) -> dict[str, Any]:
        channel: dict[str, Any] = {
            "id": str(channel_id),
            "type": kind,
            "guild_id": str(guild_id),
            "name": name,
            "position": len([c for c in self.channels.values() if c.get("guild_id") == str(guild_id)]),
            "permission_overwrites": [],
            "parent_id": None,
            "nsfw": False,
            "flags": 0,
        }
        if kind in (TEXT, FORUM):
            channel.update(
                topic=None, rate_limit_per_user=0, last_message_id=None, default_auto_archive_duration=1440
            )
        if kind == FORUM:
            channel.update(
                available_tags=[],
                default_reaction_emoji=None,
                default_sort_order=None,
                default_forum_layout=0,
            )
        if kind in (VOICE, STAGE):
            channel.update(bitrate=64000, user_limit=0, rtc_region=None, video_quality_mode=1)
        channel.update(extra)
        self.channels[channel_id] = channel
        return channel

    def member_payload(self, guild_id: int, user_id: int, *, with_user: bool = True) -> dict[str, Any]:
        try:
            member = dict(self.members[(guild_id, user_id)])
        except KeyError:
            raise FakeDiscordError(f"user {user_id} is not a member of guild {guild_id}") from None
        if with_user:
            member["user"] = self.user_payload(user_id)
        return member

    def user_payload(self, user_id: int) -> dict[str, Any]:
        try:
            return dict(self.users[user_id])
        except KeyError:
            raise FakeDiscordError(f"no user {user_id}") from None

    def guild_create_payload(self, guild_id: int, intents: int) -> dict[str, Any]:
        guild = self.guilds[guild_id]
        in_voice = {uid for (gid, uid) in self.voice_states if gid == guild_id}
        # Without GUILD_MEMBERS (and presences), Discord sends only the bot's member and members in voice.
        member_ids = [
            uid
            for (gid, uid) in self.members
            if gid == guild_id and (uid == self.world.bot_id or uid in in_voice or intents & GUILD_MEMBERS)
        ]
        channels = [c for c in self.channels.values() if c.get("guild_id") == str(guild_id)]
        return {
            **guild,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "features": [],
            "emojis": [],
            "stickers": [],
            "soundboard_sounds": [],
            "afk_channel_id": None,
            "afk_timeout": 300,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "vanity_url_code": None,
            "application_id": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "unavailable": False,
            "large": False,
            "lazy": True,
            "joined_at": iso(),
            "member_count": len([k for k in self.members if k[0] == guild_id]),
            "members": [self.member_payload(guild_id, uid) for uid in member_ids],
            "channels": [c for c in channels if c["type"] != PUBLIC_THREAD],
            "threads": [
                c for c in channels if c["type"] == PUBLIC_THREAD and not c["thread_metadata"]["archived"]
            ],
            "voice_states": [
                {k: v for k, v in vs.items() if k not in ("guild_id", "member")}
                for (gid, _), vs in self.voice_states.items()
                if gid == guild_id
            ],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [
                e for e in self.scheduled_events.values() if e["guild_id"] == str(guild_id)
            ],
        }

    # ----------------------------------------------------------------------------------------------- recording
    @property
    def calls(self) -> list[RecordedCall]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str, pattern: str, *, status: int | None = None) -> list[RecordedCall]:
        """Recorded calls whose method matches and whose path fully matches the regex ``pattern``."""
        rx = re.compile(pattern)
        return [
            c
            for c in self.calls
            if c.method == method.upper() and rx.fullmatch(c.path) and (status is None or c.status == status)
        ]

    def wait_for_calls(
        self, method: str, pattern: str, count: int = 1, *, timeout: float = 5.0, status: int | None = None
    ) -> list[RecordedCall]:
        """Block until at least ``count`` matching calls were recorded; raise ``TimeoutError`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = self.calls_to(method, pattern, status=status)
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [f"{c.method} {c.path} -> {c.status}" for c in self._calls]
                    raise TimeoutError(
                        f"expected {count} x {method} {pattern} within {timeout}s; calls: {seen}"
                    )
                self._lock.wait(remaining)

    def wait_until(
        self, predicate: Callable[[], bool], *, timeout: float = 5.0, what: str = "condition"
    ) -> None:
        """Block until ``predicate()`` holds, re-checking whenever the fake records a call or a gateway message."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{what} not met within {timeout}s")
                self._lock.wait(min(remaining, 0.05))

    def _notify(self) -> None:
        with self._lock:
            self._lock.notify_all()

    def fail_next(
        self,
        method: str,
        pattern: str,
        *,
        status: int,
        times: int = 1,
        retry_after: float = 1.0,
        is_global: bool = False,
        code: int = 0,
        message: str = "",
    ) -> None:
        """Answer the next ``times`` calls to ``method`` + path regex ``pattern`` with ``status``."""
        with self._lock:
            self._faults.append(
                Fault(
                    method.upper(), re.compile(pattern), status, times, retry_after, is_global, code, message
                )
            )

    def rate_limit(
        self, method: str, pattern: str, *, times: int = 1, retry_after: float = 0.05, is_global: bool = False
    ) -> None:
        """Answer the next ``times`` matching calls with 429, ``retry_after`` seconds, as Discord does."""
        self.fail_next(method, pattern, status=429, times=times, retry_after=retry_after, is_global=is_global)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and fault.method == method and fault.pattern.fullmatch(path):
                    fault.times -= 1
                    return fault
        return None

    @staticmethod
    def _fault_response(fault: Fault) -> web.Response:
        if fault.status == 429:
            headers = {
                "Retry-After": str(max(1, round(fault.retry_after))),
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{time.time() + fault.retry_after:.3f}",
                "X-RateLimit-Reset-After": f"{fault.retry_after:.3f}",
                "X-RateLimit-Bucket": "fakebucket" + secrets.token_hex(4),
                "X-RateLimit-Scope": "global" if fault.is_global else "user",
                "Via": "1.1 google",
            }
            if fault.is_global:
                headers["X-RateLimit-Global"] = "true"
            body = {
                "message": "You are being rate limited.",
                "retry_after": fault.retry_after,
                "global": fault.is_global,
            }
            return json_response(body, status=429, headers=headers)
        message = fault.message or {403: "Missing Access", 404: "Unknown Channel"}.get(
            fault.status, "Server error"
        )
        code = fault.code or {403: 50001, 404: 10003}.get(fault.status, 0)
        return json_response({"message": message, "code": code}, status=fault.status)

    # ----------------------------------------------------------------------------------------------- REST
    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        method = request.method
        body_json, files = await self._read_body(request)
        call = RecordedCall(method, path, dict(request.query), body_json, files, at=time.monotonic())
        response = await self._answer(request, call, path, body_json, files)
        call.status = response.status
        with self._lock:
            self._calls.append(call)
            self._lock.notify_all()
        return response

    @staticmethod
    async def _read_body(request: web.Request) -> tuple[Any, list[RecordedFile]]:
        files: list[RecordedFile] = []
        if not request.can_read_body:
            return None, files
        if request.content_type.startswith("multipart/"):
            body: Any = None
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                name = part.name or ""  # type: ignore[union-attr]
                data = await part.read()  # type: ignore[union-attr]
                if name == "payload_json":
                    body = json.loads(data)
                else:
                    files.append(
                        RecordedFile(
                            name,
                            part.filename or "",  # type: ignore[union-attr]
                            part.headers.get("Content-Type", ""),  # type: ignore[union-attr]
                            bytes(data),
                        )
                    )
            return body, files
        raw = await request.read()
        if not raw:
            return None, files
        try:
            return json.loads(raw), files
        except ValueError:
            return raw.decode("utf-8", "replace"), files

    async def _answer(
        self, request: web.Request, call: RecordedCall, path: str, body: Any, files: list[RecordedFile]
    ) -> web.Response:
        fault = self._take_fault(call.method, path)
        if fault is not None:
            return self._fault_response(fault)
        # Webhook and interaction routes authenticate with the token in the path; GET /gateway needs none.
        public = path.startswith(("/webhooks/", "/interactions/")) or path == "/gateway"
        if not public and request.headers.get("Authorization") != f"Bot {self.token}":
            return json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        for method, rx, handler in self._routes():
            if method != call.method:
                continue
            match = rx.fullmatch(path)
            if match is None:
                continue
            try:
                result = await handler(request, body or {}, files, *match.groups())
            except ApiError as err:
                return json_response(err.body(), status=err.status)
            if result is None:
                return web.Response(status=204)
            return json_response(result, headers=self._ok_headers())
        return json_response({"message": "404: Not Found", "code": 0}, status=404)

    @staticmethod
    def _ok_headers() -> dict[str, str]:
        return {
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": "49",
            "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
            "X-RateLimit-Reset-After": "1.000",
            "X-RateLimit-Bucket": "fakeok",
        }

    def _routes(self) -> list[tuple[str, re.Pattern[str], Callable[..., Awaitable[Any]]]]:
        d = r"(\d+)"
        table: list[tuple[str, str, Callable[..., Awaitable[Any]]]] = [
            ("GET", "/gateway", self._get_gateway),
            ("GET", "/gateway/bot", self._get_gateway_bot),
            ("GET", "/users/@me", self._get_me),
            ("GET", f"/users/{d}", self._get_user),
            ("GET", "/oauth2/applications/@me", self._get_application),
            ("GET", "/applications/@me", self._get_application),
            ("POST", "/users/@me/channels", self._create_dm),
            ("GET", f"/channels/{d}", self._get_channel),
            ("POST", f"/channels/{d}/messages", self._create_message),
            ("GET", f"/channels/{d}/messages", self._list_messages),
            ("GET", f"/channels/{d}/messages/{d}", self._get_message),
            ("PATCH", f"/channels/{d}/messages/{d}", self._edit_message),
            ("POST", f"/channels/{d}/messages/{d}/threads", self._thread_from_message),
            ("POST", f"/channels/{d}/threads", self._create_thread),
            ("POST", rf"/interactions/{d}/([^/]+)/callback", self._interaction_callback),
            ("POST", rf"/webhooks/{d}/([^/]+)", self._followup),
            ("GET", rf"/webhooks/{d}/([^/]+)/messages/(@original|\d+)", self._get_webhook_message),
            ("PATCH", rf"/webhooks/{d}/([^/]+)/messages/(@original|\d+)", self._edit_webhook_message),
            ("DELETE", rf"/webhooks/{d}/([^/]+)/messages/(@original|\d+)", self._delete_webhook_message),
            ("PUT", f"/applications/{d}/commands", self._put_global_commands),
            ("GET", f"/applications/{d}/commands", self._get_global_commands),
            ("PUT", f"/applications/{d}/guilds/{d}/commands", self._put_guild_commands),
            ("GET", f"/applications/{d}/guilds/{d}/commands", self._get_guild_commands),
            ("GET", f"/guilds/{d}", self._get_guild),
            ("GET", f"/guilds/{d}/channels", self._get_guild_channels),
            ("GET", f"/guilds/{d}/roles", self._get_roles),
            ("GET", f"/guilds/{d}/members", self._list_members),
            ("GET", f"/guilds/{d}/members/{d}", self._get_member),
            ("GET", f"/guilds/{d}/scheduled-events", self._list_events),
            ("POST", f"/guilds/{d}/scheduled-events", self._create_event),
            ("GET", f"/guilds/{d}/scheduled-events/{d}", self._get_event),
            ("PATCH", f"/guilds/{d}/scheduled-events/{d}", self._edit_event),
            ("DELETE", f"/guilds/{d}/scheduled-events/{d}", self._delete_event),
            ("GET", f"/guilds/{d}/scheduled-events/{d}/users", self._event_users),
        ]
        return [(m, re.compile(p), h) for m, p, h in table]

    # --- gateway discovery, identity
    async def _get_gateway(self, request: web.Request, body: Any, files: Any) -> Any:
        return {"url": self.gateway_url}

    async def _get_gateway_bot(self, request: web.Request, body: Any, files: Any) -> Any:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return {"url": self.gateway_url, "shards": 1, "session_start_limit": limit}

    async def _get_me(self, request: web.Request, body: Any, files: Any) -> Any:
        return {**self.user_payload(self.world.bot_id), "verified": True, "mfa_enabled": False, "flags": 0}

    async def _get_user(self, request: web.Request, body: Any, files: Any, user_id: str) -> Any:
        if int(user_id) not in self.users:
            raise ApiError(404, 10013, "Unknown User")
        return self.user_payload(int(user_id))

    async def _get_application(self, request: web.Request, body: Any, files: Any) -> Any:
        return {
            "id": str(self.world.application_id),
            "name": "Blendwise",
            "icon": None,
            "description": "A fake application",
            "rpc_origins": [],
            "bot_public": False,
            "bot_require_code_grant": False,
            "owner": self.user_payload(self.world.admin_id),
            "team": None,
            "verify_key": "0" * 64,
            "flags": 0,
            "interactions_endpoint_url": None,
            "bot": self.user_payload(self.world.bot_id),
        }

    # --- channels and messages
    def _channel(self, channel_id: int) -> dict[str, Any]:
        try:
            return self.channels[channel_id]
        except KeyError:
            raise ApiError(404, 10003, "Unknown Channel") from None

    async def _create_dm(self, request: web.Request, body: Any, files: Any) -> Any:
        recipient = int(body.get("recipient_id", 0))
        if recipient not in self.users:
            raise invalid_form("recipient_id: unknown user")
        if recipient not in self.dm_channels:
            channel_id = self._sf()
            self.channels[channel_id] = {
                "id": str(channel_id),
                "type": DM,
                "last_message_id": None,
                "flags": 0,
                "recipients": [self.user_payload(recipient)],
            }
            self.dm_channels[recipient] = channel_id
        return self.channels[self.dm_channels[recipient]]

    async def _get_channel(self, request: web.Request, body: Any, files: Any, channel_id: str) -> Any:
        return self._channel(int(channel_id))

    async def _create_message(self, request: web.Request, body: Any, files: Any, channel_id: str) -> Any:
        channel = self._channel(int(channel_id))
        if channel["type"] in (FORUM,):
            raise ApiError(400, 50008, "Cannot send messages in a non-text channel")
        if channel["type"] == PUBLIC_THREAD and channel["thread_metadata"]["locked"]:
            raise ApiError(403, 50083, "Thread is archived")
        nonce = body.get("nonce")
        if nonce and body.get("enforce_nonce"):
            existing = self.nonces.get((int(channel_id), str(nonce)))
            if existing is not None:
                return self.messages[existing]
        message = self._make_message(int(channel_id), self.world.bot_id, body, files)
        if nonce:
            self.nonces[(int(channel_id), str(nonce))] = int(message["id"])
        await self._dispatch_message_create(message)
        return message

    def _make_message(
        self,
        channel_id: int,
        author_id: int,
        body: dict[str, Any],
        files: list[RecordedFile],
        *,
        message_id: int | None = None,
        flags: int = 0,
        extra: dict[str, Any] | None = None,
        allow_empty: bool = False,
    ) -> dict[str, Any]:
        validate_message_body(body, files, allow_empty=allow_empty)
        channel = self.channels.get(channel_id, {})
        message_id = message_id or self._sf()
        message: dict[str, Any] = {
            "id": str(message_id),
            "channel_id": str(channel_id),
            "author": self.user_payload(author_id),
            "content": body.get("content") or "",
            "timestamp": iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": self._attachments(body, files),
            "embeds": body.get("embeds") or [],
            "components": body.get("components") or [],
            "pinned": False,
            "type": 0,
            "flags": (body.get("flags") or 0) | flags,
            **({"nonce": body["nonce"]} if body.get("nonce") else {}),
            **(extra or {}),
        }
        if channel.get("guild_id"):
            message["guild_id"] = channel["guild_id"]
        self.messages[message_id] = message
        if channel:
            channel["last_message_id"] = str(message_id)
            if channel.get("type") == PUBLIC_THREAD:
                channel["message_count"] = channel.get("message_count", 0) + 1
        return message

    def _attachments(self, body: dict[str, Any], files: list[RecordedFile]) -> list[dict[str, Any]]:
        out = []
        declared = {str(a.get("id")): a for a in body.get("attachments") or []}
        for n, f in enumerate(files):
            meta = declared.get(str(n), {})
            key = f"{self._sf()}/{f.filename}"
            self.cdn[key] = f.content
            out.append(
                {
                    "id": str(self._sf()),
                    "filename": f.filename,
                    "description": meta.get("description"),
                    "size": len(f.content),
                    "url": f"{self.base_url}/cdn/{key}",
                    "proxy_url": f"{self.base_url}/cdn/{key}",
                    "content_type": f.content_type or None,
                }
            )
        return out

    async def _list_messages(self, request: web.Request, body: Any, files: Any, channel_id: str) -> Any:
        self._channel(int(channel_id))
        limit = int(request.query.get("limit", 50))
        found = [m for m in self.messages.values() if m["channel_id"] == channel_id]
        found.sort(key=lambda m: int(m["id"]), reverse=True)
        if "before" in request.query:
            found = [m for m in found if int(m["id"]) < int(request.query["before"])]
        if "after" in request.query:
            found = [m for m in found if int(m["id"]) > int(request.query["after"])]
        return found[:limit]

    def _message(self, channel_id: int, message_id: int) -> dict[str, Any]:
        message = self.messages.get(message_id)
        if message is None or message["channel_id"] != str(channel_id):
            raise ApiError(404, 10008, "Unknown Message")
        return message

    async def _get_message(
        self, request: web.Request, body: Any, files: Any, channel_id: str, mid: str
    ) -> Any:
        return self._message(int(channel_id), int(mid))

    async def _edit_message(
        self, request: web.Request, body: Any, files: Any, channel_id: str, mid: str
    ) -> Any:
        message = self._message(int(channel_id), int(mid))
        if message["author"]["id"] != str(self.world.bot_id):
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        return await self._apply_edit(message, body, files)

    async def _apply_edit(
        self, message: dict[str, Any], body: dict[str, Any], files: list[RecordedFile]
    ) -> Any:
        merged = {
            "content": body["content"] if "content" in body else message["content"],
            "embeds": body["embeds"] if "embeds" in body else message["embeds"],
            "components": body["components"] if "components" in body else message["components"],
        }
        validate_message_body(
            merged, files, allow_empty="attachments" in body or bool(message["attachments"])
        )
        message.update({k: v if v is not None else ([] if k != "content" else "") for k, v in merged.items()})
        if "attachments" in body:
            kept = {str(a.get("id")) for a in body["attachments"]}
            message["attachments"] = [a for a in message["attachments"] if a["id"] in kept]
            message["attachments"] += self._attachments(body, files)
        message["edited_timestamp"] = iso()
        if message.get("guild_id"):
            await self.dispatch("MESSAGE_UPDATE", dict(message))
        return message

    async def _thread_from_message(
        self, request: web.Request, body: Any, files: Any, channel_id: str, mid: str
    ) -> Any:
        parent = self._channel(int(channel_id))
        if parent["type"] != TEXT:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        message = self._message(int(channel_id), int(mid))
        if message.get("thread"):
            raise ApiError(400, 160004, "A thread has already been created for this message")
        # A thread started from a message has the message's id.
        thread = self._new_thread(parent, int(mid), body, owner_id=self.world.bot_id)
        message["thread"] = thread
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return thread

    def _new_thread(
        self, parent: dict[str, Any], thread_id: int, body: dict[str, Any], owner_id: int
    ) -> dict[str, Any]:
        name = body.get("name") or ""
        if not 1 <= len(name) <= 100:
            raise invalid_form("name: must be between 1 and 100 in length")
        return self.add_channel(
            int(parent["guild_id"]),
            thread_id,
            name,
            PUBLIC_THREAD,
            parent_id=parent["id"],
            owner_id=str(owner_id),
            message_count=0,
            member_count=1,
            total_message_sent=0,
            rate_limit_per_user=0,
            last_message_id=None,
            applied_tags=body.get("applied_tags") or [],
            thread_metadata={
                "archived": False,
                "auto_archive_duration": body.get("auto_archive_duration") or 1440,
                "archive_timestamp": iso(),
                "locked": False,
                "create_timestamp": iso(),
            },
        )

    async def _create_thread(self, request: web.Request, body: Any, files: Any, channel_id: str) -> Any:
        parent = self._channel(int(channel_id))
        if parent["type"] == FORUM:
            starter = body.get("message")
            if not starter:
                raise invalid_form("message: a forum post needs a starting message")
            thread_id = self._sf()
            validate_message_body(starter, files)
            thread = self._new_thread(parent, thread_id, body, owner_id=self.world.bot_id)
            # A forum post's starter message has the thread's id and lives in the thread.
            message = self._make_message(thread_id, self.world.bot_id, starter, files, message_id=thread_id)
            await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
            await self._dispatch_message_create(message)
            return {**thread, "message": message}
        if parent["type"] != TEXT:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        thread = self._new_thread(parent, self._sf(), body, owner_id=self.world.bot_id)
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return thread

    # --- interactions
    def _interaction_by_token(self, token: str) -> InteractionRecord:
        for record in self.interactions.values():
            if record.token == token:
                return record
        raise ApiError(404, 10015, "Unknown Webhook")

    async def _interaction_callback(
        self, request: web.Request, body: Any, files: Any, interaction_id: str, token: str
    ) -> Any:
        record = self.interactions.get(int(interaction_id))
        if record is None or record.token != token:
            raise ApiError(404, 10062, "Unknown interaction")
        if record.acked:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        if time.monotonic() - record.dispatched_at > self.interaction_deadline:
            raise ApiError(404, 10062, "Unknown interaction")
        kind = body.get("type")
        data = body.get("data") or {}
        record.responses.append(body)
        resource: dict[str, Any] = {"type": kind}
        message: dict[str, Any] | None = None
        if kind == 4:
            message = self._make_message(
                int(record.payload["channel_id"]),
                self.world.bot_id,
                data,
                files,
                extra={
                    "application_id": str(self.world.application_id),
                    "webhook_id": str(self.world.application_id),
                },
            )
            record.original_message_id = int(message["id"])
        elif kind == 5:
            message = self._make_message(
                int(record.payload["channel_id"]),
                self.world.bot_id,
                {"content": ""},
                [],
                flags=(data.get("flags") or 0) | 128,  # LOADING
                extra={
                    "application_id": str(self.world.application_id),
                    "webhook_id": str(self.world.application_id),
                },
                allow_empty=True,
            )
            record.original_message_id = int(message["id"])
        elif kind in (6, 7):
            if record.type not in (3, 5) or "message" not in record.payload:
                raise ApiError(400, 40043, "Interaction has no message to update")
            record.original_message_id = int(record.payload["message"]["id"])
            if kind == 7:
                message = await self._apply_edit(self.messages[record.original_message_id], data, files)
        elif kind == 9:
            if record.type == 5:
                raise ApiError(400, 50035, "Invalid Form Body: a modal cannot answer a modal submit")
            validate_modal(data)
            record.modal = data
        elif kind != 1:
            raise invalid_form(f"type: unknown interaction callback type {kind}")
        record.acked = True
        self._notify()
        if message is not None:
            resource["message"] = message
        ephemeral = bool((data.get("flags") or 0) & 64)
        return {
            "interaction": {
                "id": str(record.id),
                "type": record.type,
                "response_message_id": str(record.original_message_id)
                if record.original_message_id
                else None,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": ephemeral,
            },
            "resource": resource,
        }

    async def _followup(self, request: web.Request, body: Any, files: Any, app_id: str, token: str) -> Any:
        record = self._interaction_by_token(token)
        if not record.acked:
            raise ApiError(404, 10015, "Unknown Webhook")
        loading = self.messages.get(record.original_message_id or 0)
        if loading is not None and loading["flags"] & 128:
            # The first followup after a "thinking" defer replaces the loading message.
            loading["flags"] &= ~128
            return await self._apply_edit(loading, {**body, "content": body.get("content") or ""}, files)
        return self._make_message(
            int(record.payload["channel_id"]),
            self.world.bot_id,
            body,
            files,
            extra={
                "application_id": str(self.world.application_id),
                "webhook_id": str(self.world.application_id),
            },
        )

    def _webhook_message(self, token: str, which: str) -> dict[str, Any]:
        record = self._interaction_by_token(token)
        if not record.acked:
            raise ApiError(404, 10015, "Unknown Webhook")
        mid = record.original_message_id if which == "@original" else int(which)
        if mid is None or mid not in self.messages:
            raise ApiError(404, 10008, "Unknown Message")
        return self.messages[mid]

    async def _get_webhook_message(
        self, request: web.Request, body: Any, files: Any, app_id: str, token: str, which: str
    ) -> Any:
        return self._webhook_message(token, which)

    async def _edit_webhook_message(
        self, request: web.Request, body: Any, files: Any, app_id: str, token: str, which: str
    ) -> Any:
        message = self._webhook_message(token, which)
        message["flags"] &= ~128
        return await self._apply_edit(message, body, files)

    async def _delete_webhook_message(
        self, request: web.Request, body: Any, files: Any, app_id: str, token: str, which: str
    ) -> Any:
        message = self._webhook_message(token, which)
        self.messages.pop(int(message["id"]), None)
        return None

    # --- application commands
    def _store_commands(self, guild_id: int | None, body: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not isinstance(body, list):
            raise invalid_form("body must be a list of commands")
        previous = {c["name"]: c for c in self.commands.get(guild_id, [])}
        stored = []
        for command in body:
            validate_command(command)
            old = previous.get(command["name"])
            stored.append(
                {
                    **command,
                    "id": old["id"] if old else str(self._sf()),
                    "application_id": str(self.world.application_id),
                    "version": str(self._sf()),
                    "type": command.get("type", 1),
                    **({"guild_id": str(guild_id)} if guild_id else {}),
                }
            )
        self.commands[guild_id] = stored
        return stored

    async def _put_global_commands(self, request: web.Request, body: Any, files: Any, app_id: str) -> Any:
        return self._store_commands(None, body)

    async def _get_global_commands(self, request: web.Request, body: Any, files: Any, app_id: str) -> Any:
        return self.commands.get(None, [])

    async def _put_guild_commands(
        self, request: web.Request, body: Any, files: Any, app_id: str, gid: str
    ) -> Any:
        self._guild(int(gid))
        return self._store_commands(int(gid), body)

    async def _get_guild_commands(
        self, request: web.Request, body: Any, files: Any, app_id: str, gid: str
    ) -> Any:
        return self.commands.get(int(gid), [])

    # --- guilds, members
    def _guild(self, guild_id: int) -> dict[str, Any]:
        try:
            return self.guilds[guild_id]
        except KeyError:
            raise ApiError(404, 10004, "Unknown Guild") from None

    async def _get_guild(self, request: web.Request, body: Any, files: Any, gid: str) -> Any:
        payload = self.guild_create_payload(int(gid), 0)
        for key in ("members", "channels", "threads", "voice_states", "presences", "guild_scheduled_events"):
            payload.pop(key, None)
        return payload

    async def _get_guild_channels(self, request: web.Request, body: Any, files: Any, gid: str) -> Any:
        self._guild(int(gid))
        return [c for c in self.channels.values() if c.get("guild_id") == gid and c["type"] != PUBLIC_THREAD]

    async def _get_roles(self, request: web.Request, body: Any, files: Any, gid: str) -> Any:
        return self._guild(int(gid))["roles"]

    async def _list_members(self, request: web.Request, body: Any, files: Any, gid: str) -> Any:
        self._guild(int(gid))
        after = int(request.query.get("after", 0))
        limit = int(request.query.get("limit", 1))
        ids = sorted(uid for (g, uid) in self.members if g == int(gid) and uid > after)
        return [self.member_payload(int(gid), uid) for uid in ids[:limit]]

    async def _get_member(self, request: web.Request, body: Any, files: Any, gid: str, uid: str) -> Any:
        self._guild(int(gid))
        if (int(gid), int(uid)) not in self.members:
            raise ApiError(404, 10007, "Unknown Member")
        return self.member_payload(int(gid), int(uid))

    # --- scheduled events
    def _event(self, guild_id: int, event_id: int) -> dict[str, Any]:
        event = self.scheduled_events.get(event_id)
        if event is None or event["guild_id"] != str(guild_id):
            raise ApiError(404, 10070, "Unknown Guild Scheduled Event")
        return event

    def _check_event(self, event: dict[str, Any]) -> None:
        kind = event.get("entity_type")
        if kind == 3:
            if not (event.get("entity_metadata") or {}).get("location"):
                raise invalid_form("entity_metadata.location: required for EXTERNAL events")
            if not event.get("scheduled_end_time"):
                raise invalid_form("scheduled_end_time: required for EXTERNAL events")
            if event.get("channel_id"):
                raise invalid_form("channel_id: must be null for EXTERNAL events")
        elif kind in (1, 2):
            channel = self.channels.get(int(event.get("channel_id") or 0))
            wanted = STAGE if kind == 1 else VOICE
            if channel is None or channel["type"] != wanted:
                raise invalid_form(
                    "channel_id: must be a stage channel" if kind == 1 else "channel_id: must be voice"
                )
        else:
            raise invalid_form(f"entity_type: unknown {kind}")
        if len(event.get("name") or "") not in range(1, 101):
            raise invalid_form("name: must be between 1 and 100 in length")
        if len(event.get("description") or "") > 1000:
            raise invalid_form("description: must be 1000 or fewer in length")

    def _check_start(self, event: dict[str, Any]) -> None:
        """Discord refuses a new start in the past: 400, code 50035, "Cannot schedule event in the past"."""
        start = datetime.fromisoformat(str(event.get("scheduled_start_time")))
        if start <= self.now():
            raise invalid_form("scheduled_start_time: Cannot schedule event in the past.")
        end = event.get("scheduled_end_time")
        if end and datetime.fromisoformat(str(end)) <= start:
            raise invalid_form("scheduled_end_time: Cannot be before the start time.")

    async def _list_events(self, request: web.Request, body: Any, files: Any, gid: str) -> Any:
        self._guild(int(gid))
        return [e for e in self.scheduled_events.values() if e["guild_id"] == gid]

    async def _create_event(self, request: web.Request, body: Any, files: Any, gid: str) -> Any:
        self._guild(int(gid))
        event_id = self._sf()
        event = {
            "id": str(event_id),
            "guild_id": gid,
            "channel_id": body.get("channel_id"),
            "creator_id": str(self.world.bot_id),
            "creator": self.user_payload(self.world.bot_id),
            "name": body.get("name"),
            "description": body.get("description"),
            "scheduled_start_time": body.get("scheduled_start_time"),
            "scheduled_end_time": body.get("scheduled_end_time"),
            "privacy_level": body.get("privacy_level", 2),
            "status": 1,
            "entity_type": body.get("entity_type"),
            "entity_id": None,
            "entity_metadata": body.get("entity_metadata"),
            "user_count": 0,
            "image": None,
            "recurrence_rule": None,
        }
        self._check_event(event)
        self._check_start(event)
        self.scheduled_events[event_id] = event
        self.event_users[event_id] = []
        await self.dispatch("GUILD_SCHEDULED_EVENT_CREATE", event)
        return event

    async def _get_event(self, request: web.Request, body: Any, files: Any, gid: str, eid: str) -> Any:
        return self._event(int(gid), int(eid))

    async def _edit_event(self, request: web.Request, body: Any, files: Any, gid: str, eid: str) -> Any:
        event = self._event(int(gid), int(eid))
        updated = {**event, **{k: v for k, v in body.items() if k in event}}
        self._check_event(updated)
        if updated["scheduled_start_time"] != event["scheduled_start_time"]:
            self._check_start(updated)
        event.update(updated)
        await self.dispatch("GUILD_SCHEDULED_EVENT_UPDATE", event)
        return event

    async def _delete_event(self, request: web.Request, body: Any, files: Any, gid: str, eid: str) -> Any:
        event = self._event(int(gid), int(eid))
        del self.scheduled_events[int(eid)]
        await self.dispatch("GUILD_SCHEDULED_EVENT_DELETE", event)
        return None

    async def _event_users(self, request: web.Request, body: Any, files: Any, gid: str, eid: str) -> Any:
        self._event(int(gid), int(eid))
        limit = min(int(request.query.get("limit", 100)), 100)
        with_member = request.query.get("with_member") in ("true", "True", "1")
        ids = sorted(self.event_users.get(int(eid), []))
        if "after" in request.query:
            ids = [u for u in ids if u > int(request.query["after"])]
        if "before" in request.query:
            ids = [u for u in ids if u < int(request.query["before"])][-limit:]
        out = []
        for uid in ids[:limit]:
            entry: dict[str, Any] = {"guild_scheduled_event_id": eid, "user": self.user_payload(uid)}
            if with_member and (int(gid), uid) in self.members:
                entry["member"] = self.member_payload(int(gid), uid, with_user=False)
            out.append(entry)
        return out

    async def _cdn(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if key not in self.cdn:
            return web.Response(status=404)
        return web.Response(body=self.cdn[key])

    # ----------------------------------------------------------------------------------------------- gateway
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=0)
        await ws.prepare(request)
        compressor = zlib.compressobj() if request.query.get("compress") == "zlib-stream" else None
        session: Session | None = None

        async def send(payload: dict[str, Any]) -> None:
            await self._send_frame(ws, compressor, payload)

        await send({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}, "s": None, "t": None})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            op, data = frame.get("op"), frame.get("d")
            if op == 1:
                await send({"op": 11, "d": None, "s": None, "t": None})
            elif op == 2:
                if data.get("token") != self.token:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                session = Session(
                    session_id=secrets.token_hex(16), intents=int(data.get("intents", 0)), identify=data
                )
                session.ws, session.compressor = ws, compressor
                self.sessions[session.session_id] = session
                await self._identify(session)
            elif op == 6:
                known = self.sessions.get(data.get("session_id", ""))
                if known is None or data.get("token") != self.token:
                    await send({"op": 9, "d": False, "s": None, "t": None})
                    continue
                session = known
                session.ws, session.compressor = ws, compressor
                session.resumed += 1
                missed = [p for p in session.sent if p["s"] > int(data.get("seq") or 0)]
                for payload in missed:
                    await send(payload)
                await self._send_dispatch(session, "RESUMED", {})
            elif op == 8 and session is not None:
                await self._members_chunk(session, data)
            self._notify()
        if session is not None and session.ws is ws:
            session.ws = None
        self._notify()
        return ws

    @staticmethod
    async def _send_frame(ws: web.WebSocketResponse, compressor: Any, payload: dict[str, Any]) -> None:
        text = json.dumps(payload)
        if compressor is None:
            await ws.send_str(text)
        else:
            # zlib-stream: one shared deflate context per connection, each message ending in a sync flush.
            await ws.send_bytes(compressor.compress(text.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH))

    async def _identify(self, session: Session) -> None:
        ready = {
            "v": 10,
            "user": {
                **self.user_payload(self.world.bot_id),
                "verified": True,
                "mfa_enabled": False,
                "flags": 0,
            },
            "guilds": [{"id": str(gid), "unavailable": True} for gid in self.guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "shard": [0, 1],
            "application": {"id": str(self.world.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "user_settings": {},
            "geo_ordered_rtc_regions": [],
        }
        await self._send_dispatch(session, "READY", ready)
        if session.intents & GUILDS:
            for gid in self.guilds:
                await self._send_dispatch(
                    session, "GUILD_CREATE", self.guild_create_payload(gid, session.intents)
                )

    async def _members_chunk(self, session: Session, data: dict[str, Any]) -> None:
        gid = int(data.get("guild_id") or 0)
        wanted = {int(u) for u in data.get("user_ids") or []}
        members = [
            self.member_payload(gid, uid)
            for (g, uid) in self.members
            if g == gid and (not wanted or uid in wanted)
        ]
        chunk = {
            "guild_id": str(gid),
            "members": members,
            "chunk_index": 0,
            "chunk_count": 1,
            "nonce": data.get("nonce"),
        }
        await self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)

    async def _send_dispatch(self, session: Session, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        payload = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.sent.append(payload)
        if session.ws is not None and not session.ws.closed:
            await self._send_frame(session.ws, session.compressor, payload)
        self._notify()

    async def dispatch(self, event: str, data: dict[str, Any]) -> int:
        """Send a dispatch (op 0) to every identified session whose intents cover ``event``; returns how many."""
        needed = EVENT_INTENTS.get(event, GUILDS if "guild_id" in data else 0)
        sent = 0
        for session in list(self.sessions.values()):
            if session.ws is None:
                continue
            if needed and not session.intents & needed:
                continue
            await self._send_dispatch(session, event, data)
            sent += 1
        return sent

    async def _dispatch_message_create(self, message: dict[str, Any]) -> None:
        channel = self.channels.get(int(message["channel_id"]), {})
        in_guild = bool(message.get("guild_id"))
        needed = GUILD_MESSAGES if in_guild else DIRECT_MESSAGES
        for session in list(self.sessions.values()):
            if session.ws is None or not session.intents & needed:
                continue
            payload = dict(message)
            if in_guild:
                payload["member"] = self.member_payload(
                    int(message["guild_id"]), int(message["author"]["id"]), with_user=False
                )
            mentioned = any(m.get("id") == str(self.world.bot_id) for m in payload.get("mentions", []))
            own = message["author"]["id"] == str(self.world.bot_id)
            if in_guild and not own and not mentioned and not session.intents & MESSAGE_CONTENT:
                # Without the privileged intent Discord blanks these fields.
                payload.update(content="", embeds=[], attachments=[], components=[])
            if channel.get("type") == PUBLIC_THREAD:
                payload["position"] = channel.get("message_count", 1) - 1
            await self._send_dispatch(session, "MESSAGE_CREATE", payload)

    def connected_sessions(self) -> list[Session]:
        return [s for s in self.sessions.values() if s.ws is not None and not s.ws.closed]

    def wait_for_session(self, *, timeout: float = 10.0, count: int = 1) -> Session:
        """Wait until ``count`` sessions have identified and the newest one is connected."""
        self.wait_until(
            lambda: len(self.sessions) >= count and bool(self.connected_sessions()),
            timeout=timeout,
            what="a gateway session",
        )
        return list(self.sessions.values())[-1]

    def force_reconnect(self) -> None:
        """Send op 7 RECONNECT: the client must reconnect to ``resume_gateway_url`` and RESUME."""

        async def go() -> None:
            for session in self.connected_sessions():
                assert session.ws is not None
                await self._send_frame(
                    session.ws, session.compressor, {"op": 7, "d": None, "s": None, "t": None}
                )

        self._run(go())

    # ----------------------------------------------------------------------------------------------- test helpers
    def _interaction_payload(
        self, kind: int, user_id: int, guild_id: int | None, channel_id: int, data: dict[str, Any]
    ) -> InteractionRecord:
        interaction_id = self._sf()
        token = "itok-" + secrets.token_urlsafe(24)
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.world.application_id),
            "type": kind,
            "token": token,
            "version": 1,
            "locale": "en-US",
            "app_permissions": "2248473465835073",
            "attachment_size_limit": 26214400,
            "entitlements": [],
            "channel_id": str(channel_id),
            "data": data,
        }
        channel = self.channels.get(channel_id)
        if channel is None:
            raise FakeDiscordError(f"no channel {channel_id}")
        payload["channel"] = {k: v for k, v in channel.items() if k != "recipients"}
        if guild_id is not None:
            payload.update(
                guild_id=str(guild_id),
                guild_locale="en-US",
                guild={"id": str(guild_id), "locale": "en-US", "features": []},
                member={**self.member_payload(guild_id, user_id), "permissions": "2248473465835073"},
                authorizing_integration_owners={"0": str(guild_id)},
                context=0,
            )
        else:
            payload.update(
                user=self.user_payload(user_id),
                authorizing_integration_owners={"0": str(self.world.guild_id)},
                context=1,
            )
            payload["channel"]["recipients"] = [self.user_payload(user_id)]
        record = InteractionRecord(interaction_id, token, kind, payload, time.monotonic())
        self.interactions[interaction_id] = record
        return record

    async def _send_interaction(self, record: InteractionRecord) -> None:
        record.dispatched_at = time.monotonic()
        if not await self.dispatch("INTERACTION_CREATE", record.payload):
            raise FakeDiscordError("no gateway session is connected")

    def press_button(
        self, user_id: int, message_id: int, custom_id: str, *, interaction_id: int | None = None
    ) -> int:
        """Dispatch a component INTERACTION_CREATE for a button on a message the bot sent; returns its id.

        ``interaction_id`` re-sends an earlier interaction unchanged (a duplicate delivery).
        """

        async def go() -> int:
            if interaction_id is not None:
                record = self.interactions[interaction_id]
                await self._send_interaction(record)
                return record.id
            message = self.messages.get(message_id)
            if message is None:
                raise FakeDiscordError(f"no message {message_id}")
            ids = [c.get("custom_id") for row in message["components"] for c in row.get("components", [])]
            if custom_id not in ids:
                raise FakeDiscordError(f"message {message_id} has no button {custom_id!r} (has {ids})")
            channel_id = int(message["channel_id"])
            guild_id = int(message["guild_id"]) if message.get("guild_id") else None
            data = {"custom_id": custom_id, "component_type": 2}
            record = self._interaction_payload(3, user_id, guild_id, channel_id, data)
            record.payload["message"] = dict(message)
            await self._send_interaction(record)
            return record.id

        return self._run(go())

    def submit_modal(self, user_id: int, opened_by: int, text: str | dict[str, str]) -> int:
        """Submit the modal that interaction ``opened_by`` opened; ``text`` fills its (first) text input."""

        async def go() -> int:
            opener = self.interactions.get(opened_by)
            if opener is None or opener.modal is None:
                raise FakeDiscordError(f"interaction {opened_by} did not open a modal")
            modal = opener.modal

            def fill(component: dict[str, Any]) -> dict[str, Any]:
                value = text.get(component["custom_id"], "") if isinstance(text, dict) else text
                return {
                    "type": 4,
                    "id": component.get("id", 0),
                    "custom_id": component["custom_id"],
                    "value": value,
                }

            components = []
            for top in modal.get("components", []):
                if top.get("type") == 1:
                    inner = [fill(c) for c in top.get("components", []) if c.get("type") == 4]
                    components.append({"type": 1, "id": top.get("id", 0), "components": inner})
                elif top.get("type") == 18 and top.get("component", {}).get("type") == 4:
                    components.append(
                        {"type": 18, "id": top.get("id", 0), "component": fill(top["component"])}
                    )
            channel_id = int(opener.payload["channel_id"])
            guild_id = int(opener.payload["guild_id"]) if opener.payload.get("guild_id") else None
            data = {"custom_id": modal["custom_id"], "components": components}
            record = self._interaction_payload(5, user_id, guild_id, channel_id, data)
            if "message" in opener.payload:
                record.payload["message"] = self.messages.get(
                    int(opener.payload["message"]["id"]), opener.payload["message"]
                )
            await self._send_interaction(record)
            return record.id

        return self._run(go())

    def invoke_command(
        self,
        user_id: int,
        name: str,
        subcommand: str | None = None,
        options: dict[str, Any] | None = None,
        *,
        guild_id: int | None = None,
        channel_id: int | None = None,
        attachment: tuple[str, bytes] | None = None,
        stale: bool = False,
    ) -> int:
        """Dispatch a slash command INTERACTION_CREATE for a command the bot registered; returns its id.

        Option values are typed as the registered command declares them: a USER option takes a user id, an
        ATTACHMENT option takes the ``attachment`` (filename, bytes) served from the fake CDN.
        ``stale=True`` sends a subcommand the bot did not register, with string options, as a Discord client with
        an outdated command list does (e.g. after an update removed or renamed it).
        """

        async def go() -> int:
            gid = guild_id if guild_id is not None else self.world.guild_id
            cid = channel_id if channel_id is not None else self.world.text_channel_id
            registered = next((c for c in self.commands.get(gid, []) if c["name"] == name), None)
            registered = registered or next(
                (c for c in self.commands.get(None, []) if c["name"] == name), None
            )
            if registered is None:
                raise FakeDiscordError(f"command /{name} is not registered (global or guild {gid})")
            declared = registered.get("options", [])
            target = registered
            if subcommand is not None:
                sub = next((o for o in declared if o["name"] == subcommand and o["type"] == 1), None)
                if sub is None and stale:
                    sub = {
                        "name": subcommand,
                        "type": 1,
                        "options": [{"name": k, "type": 3} for k in options or {}],
                    }
                if sub is None:
                    raise FakeDiscordError(f"/{name} has no subcommand {subcommand!r}")
                target = sub
            resolved: dict[str, Any] = {}
            given = []
            for key, value in (options or {}).items():
                spec = next((o for o in target.get("options", []) if o["name"] == key), None)
                if spec is None:
                    raise FakeDiscordError(f"/{name} {subcommand or ''} has no option {key!r}")
                if spec["type"] == 6:
                    resolved.setdefault("users", {})[str(value)] = self.user_payload(int(value))
                    if (gid, int(value)) in self.members:
                        member = self.member_payload(gid, int(value), with_user=False)
                        resolved.setdefault("members", {})[str(value)] = {**member, "permissions": "0"}
                    value = str(value)
                elif spec["type"] == 11:
                    if attachment is None:
                        raise FakeDiscordError("an ATTACHMENT option needs attachment=(filename, bytes)")
                    att_id = str(self._sf())
                    key_cdn = f"{att_id}/{attachment[0]}"
                    self.cdn[key_cdn] = attachment[1]
                    resolved.setdefault("attachments", {})[att_id] = {
                        "id": att_id,
                        "filename": attachment[0],
                        "size": len(attachment[1]),
                        "url": f"{self.base_url}/cdn/{key_cdn}",
                        "proxy_url": f"{self.base_url}/cdn/{key_cdn}",
                        "content_type": "text/csv",
                        "ephemeral": True,
                    }
                    value = att_id
                given.append({"name": key, "type": spec["type"], "value": value})
            options_payload = (
                given if subcommand is None else [{"name": subcommand, "type": 1, "options": given}]
            )
            data: dict[str, Any] = {
                "id": registered["id"],
                "name": name,
                "type": 1,
                "options": options_payload,
                **({"guild_id": registered["guild_id"]} if registered.get("guild_id") else {}),
                **({"resolved": resolved} if resolved else {}),
            }
            record = self._interaction_payload(2, user_id, gid, cid, data)
            await self._send_interaction(record)
            return record.id

        return self._run(go())

    def interaction(self, interaction_id: int) -> InteractionRecord:
        return self.interactions[interaction_id]

    def wait_for_ack(self, interaction_id: int, *, timeout: float = 5.0) -> dict[str, Any]:
        """Wait for the first callback of an interaction; returns its body (``type``, ``data``)."""
        record = self.interactions[interaction_id]
        self.wait_until(
            lambda: record.acked, timeout=timeout, what=f"a callback for interaction {interaction_id}"
        )
        return record.responses[0]

    def post_message(
        self, channel_id: int, author_id: int, content: str, *, mentions: list[int] | None = None
    ) -> int:
        """A person posts ``content`` in a channel or thread: stored and dispatched as MESSAGE_CREATE."""

        async def go() -> int:
            channel = self.channels.get(channel_id)
            if channel is None:
                raise FakeDiscordError(f"no channel {channel_id}")
            message = self._make_message(channel_id, author_id, {"content": content}, [])
            message["mentions"] = [self.user_payload(u) for u in mentions or []]
            await self._dispatch_message_create(message)
            return int(message["id"])

        return self._run(go())

    def voice_state(self, user_id: int, channel_id: int | None, *, guild_id: int | None = None) -> None:
        """``user_id`` joins ``channel_id`` (voice or stage), moves there, or leaves voice (``None``)."""

        async def go() -> None:
            gid = guild_id if guild_id is not None else self.world.guild_id
            state = {
                "guild_id": str(gid),
                "channel_id": str(channel_id) if channel_id is not None else None,
                "user_id": str(user_id),
                "member": self.member_payload(gid, user_id),
                "session_id": secrets.token_hex(16),
                "deaf": False,
                "mute": False,
                "self_deaf": False,
                "self_mute": False,
                "self_stream": False,
                "self_video": False,
                "suppress": False,
                "request_to_speak_timestamp": None,
            }
            if channel_id is None:
                self.voice_states.pop((gid, user_id), None)
            else:
                self.voice_states[(gid, user_id)] = state
            await self.dispatch("VOICE_STATE_UPDATE", state)

        self._run(go())

    def event_interest(
        self, event_id: int, user_id: int, interested: bool = True, *, dispatch: bool = True
    ) -> None:
        """``user_id`` marks (or unmarks) a scheduled event "Interested": GUILD_SCHEDULED_EVENT_USER_ADD/REMOVE.

        ``dispatch=False`` changes the users list without telling the gateway (a missed event, for reconcile tests).
        """

        async def go() -> None:
            event = self.scheduled_events.get(event_id)
            if event is None:
                raise FakeDiscordError(f"no scheduled event {event_id}")
            users = self.event_users.setdefault(event_id, [])
            if interested and user_id not in users:
                users.append(user_id)
            elif not interested and user_id in users:
                users.remove(user_id)
            event["user_count"] = len(users)
            if dispatch:
                name = "GUILD_SCHEDULED_EVENT_USER_ADD" if interested else "GUILD_SCHEDULED_EVENT_USER_REMOVE"
                payload = {
                    "guild_scheduled_event_id": str(event_id),
                    "user_id": str(user_id),
                    "guild_id": event["guild_id"],
                }
                await self.dispatch(name, payload)

        self._run(go())

    def start_thread(self, parent_id: int, name: str, owner_id: int) -> int:
        """Someone (not the bot) starts a thread in a text channel: stored and dispatched as THREAD_CREATE."""

        async def go() -> int:
            parent = self.channels.get(parent_id)
            if parent is None or parent["type"] != TEXT:
                raise FakeDiscordError(f"no text channel {parent_id}")
            thread = self._new_thread(parent, self._sf(), {"name": name}, owner_id=owner_id)
            await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
            return int(thread["id"])

        return self._run(go())

    def dispatch_raw(self, event: str, data: dict[str, Any]) -> int:
        """Send any dispatch event to the connected sessions (intents permitting)."""
        return self._run(self.dispatch(event, data))

    def messages_in(self, channel_id: int) -> list[dict[str, Any]]:
        return sorted(
            (m for m in list(self.messages.values()) if m["channel_id"] == str(channel_id)),
            key=lambda m: int(m["id"]),
        )

    # ----------------------------------------------------------------------------------------------- control API
    async def _control(self, request: web.Request) -> web.Response:
        op = request.match_info["op"]
        body = await request.json() if request.can_read_body else {}
        loop = asyncio.get_running_loop()
        try:
            if op == "calls":
                return json_response(
                    [c.summary() for c in self.calls], dumps=lambda o: json.dumps(o, default=str)
                )
            if op == "world":
                return json_response({k: v for k, v in asdict(self.world).items()}, dumps=_dumps_ids)
            if op == "rate_limit":
                self.rate_limit(body["method"], body["pattern"], times=int(body.get("times", 1)))
                return json_response({"ok": True})
            # The sync helpers marshal onto this loop; run them in a worker thread so they can.
            if op == "press":
                args = (int(body["user_id"]), int(body["message_id"]), body["custom_id"])
                result = await loop.run_in_executor(None, lambda: self.press_button(*args))
            elif op == "command":
                result = await loop.run_in_executor(
                    None,
                    lambda: self.invoke_command(
                        int(body["user_id"]),
                        body.get("name", "learn"),
                        body.get("subcommand"),
                        body.get("options"),
                    ),
                )
            elif op == "message":
                args2 = (int(body["channel_id"]), int(body["user_id"]), body["content"])
                result = await loop.run_in_executor(None, lambda: self.post_message(*args2))
            elif op == "voice":
                channel = int(body["channel_id"]) if body.get("channel_id") else None
                await loop.run_in_executor(None, lambda: self.voice_state(int(body["user_id"]), channel))
                result = None
            elif op == "interest":
                await loop.run_in_executor(
                    None,
                    lambda: self.event_interest(
                        int(body["event_id"]), int(body["user_id"]), bool(body.get("interested", True))
                    ),
                )
                result = None
            else:
                return json_response({"error": f"unknown control op {op}"}, status=404)
        except (FakeDiscordError, KeyError, ValueError) as err:
            return json_response({"error": str(err)}, status=400)
        return json_response({"ok": True, "id": str(result) if result is not None else None})


def json_response(
    body: Any,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    dumps: Callable[[Any], str] = json.dumps,
) -> web.Response:
    """A JSON response with ``Content-Type: application/json`` exactly: discord.py compares the header verbatim and
    treats ``application/json; charset=utf-8`` (aiohttp's default) as text."""
    return web.Response(
        body=dumps(body).encode(),
        status=status,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


def _dumps_ids(obj: Any) -> str:
    def fix(value: Any) -> Any:
        if isinstance(value, int) and value > 2**53:
            return str(value)
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    return json.dumps({k: fix(v) for k, v in obj.items()})


# ---------------------------------------------------------------------------------------------------- validation
def validate_message_body(
    body: dict[str, Any], files: list[RecordedFile], *, allow_empty: bool = False
) -> None:
    """Raise Discord's 400 for what Discord refuses: empty messages and anything over its limits."""
    content = body.get("content") or ""
    embeds = body.get("embeds") or []
    components = body.get("components") or []
    if not (content or embeds or components or files or body.get("sticker_ids") or allow_empty):
        raise ApiError(400, 50006, "Cannot send an empty message")
    if len(content) > MAX_CONTENT:
        raise invalid_form(f"content: must be {MAX_CONTENT} or fewer in length")
    if len(embeds) > MAX_EMBEDS:
        raise invalid_form(f"embeds: must be {MAX_EMBEDS} or fewer in length")
    total = 0
    for n, embed in enumerate(embeds):
        title = embed.get("title") or ""
        description = embed.get("description") or ""
        footer = (embed.get("footer") or {}).get("text") or ""
        author = (embed.get("author") or {}).get("name") or ""
        fields = embed.get("fields") or []
        if len(title) > MAX_TITLE:
            raise invalid_form(f"embeds.{n}.title: must be {MAX_TITLE} or fewer in length")
        if len(description) > MAX_DESCRIPTION:
            raise invalid_form(f"embeds.{n}.description: must be {MAX_DESCRIPTION} or fewer in length")
        if len(footer) > MAX_FOOTER:
            raise invalid_form(f"embeds.{n}.footer.text: must be {MAX_FOOTER} or fewer in length")
        if len(fields) > MAX_FIELDS:
            raise invalid_form(f"embeds.{n}.fields: must be {MAX_FIELDS} or fewer in length")
        for f in fields:
            if not f.get("name") or len(f["name"]) > MAX_FIELD_NAME:
                raise invalid_form(f"embeds.{n}.fields.name: must be 1 to {MAX_FIELD_NAME} in length")
            if not f.get("value") or len(f["value"]) > MAX_FIELD_VALUE:
                raise invalid_form(f"embeds.{n}.fields.value: must be 1 to {MAX_FIELD_VALUE} in length")
        total += len(title) + len(description) + len(footer) + len(author)
        total += sum(len(f.get("name") or "") + len(f.get("value") or "") for f in fields)
    if total > MAX_EMBED_TOTAL:
        raise invalid_form(f"embeds: embed size exceeds maximum size of {MAX_EMBED_TOTAL}")
    validate_components(components)


def validate_components(rows: list[dict[str, Any]]) -> None:
    if len(rows) > MAX_ROWS:
        raise invalid_form(f"components: must be {MAX_ROWS} or fewer in length")
    seen: set[str] = set()
    for n, row in enumerate(rows):
        if row.get("type") != 1:
            raise invalid_form(f"components.{n}.type: top-level components must be action rows")
        items = row.get("components") or []
        if not 1 <= len(items) <= MAX_ROW_WIDTH:
            raise invalid_form(f"components.{n}.components: must be 1 to {MAX_ROW_WIDTH} in length")
        for item in items:
            if item.get("type") != 2:
                continue
            label = item.get("label") or ""
            if len(label) > MAX_LABEL:
                raise invalid_form(f"components.{n}.label: must be {MAX_LABEL} or fewer in length")
            if not label and not item.get("emoji"):
                raise invalid_form(f"components.{n}: a button needs a label or an emoji")
            if item.get("style") == 5:
                continue
            custom_id = item.get("custom_id") or ""
            if not 1 <= len(custom_id) <= MAX_CUSTOM_ID:
                raise invalid_form(f"components.{n}.custom_id: must be 1 to {MAX_CUSTOM_ID} in length")
            if custom_id in seen:
                raise invalid_form("components: custom_id values must be unique")
            seen.add(custom_id)


def validate_modal(data: dict[str, Any]) -> None:
    if not data.get("custom_id") or len(data["custom_id"]) > MAX_CUSTOM_ID:
        raise invalid_form("data.custom_id: must be 1 to 100 in length")
    if not 1 <= len(data.get("title") or "") <= 45:
        raise invalid_form("data.title: must be 1 to 45 in length")
    if not data.get("components"):
        raise invalid_form("data.components: a modal needs at least one component")


_COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")


def validate_command(command: dict[str, Any]) -> None:
    name = command.get("name") or ""
    if not _COMMAND_NAME.match(name) or name.lower() != name:
        raise invalid_form(f"name: {name!r} is not a valid command name")
    if command.get("type", 1) == 1 and not 1 <= len(command.get("description") or "") <= 100:
        raise invalid_form(f"{name}.description: must be 1 to 100 in length")
    options = command.get("options") or []
    if len(options) > 25:
        raise invalid_form(f"{name}.options: must be 25 or fewer in length")
    for option in options:
        if option.get("type") in (1, 2):
            validate_command({**option, "type": 1})
        elif not _COMMAND_NAME.match(option.get("name") or ""):
            raise invalid_form(f"{name}.options: invalid option name {option.get('name')!r}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake Discord (REST + gateway) for Blendwise.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="fake-bot-token")
    args = parser.parse_args(argv)
    fake = FakeDiscord(token=args.token, host=args.host, port=args.port)
    fake.start()
    w = fake.world
    print(f"DISCORD_API_URL={fake.api_url}")
    print(f"DISCORD_GATEWAY_URL={fake.gateway_url}")
    print(f"DISCORD_TOKEN={fake.token}")
    print(
        f"guild={w.guild_id} text={w.text_channel_id} forum={w.forum_channel_id} voice={w.voice_channel_id}"
    )
    print(
        f"control API: {fake.base_url}/_fake/{{calls,world,press,command,message,voice,interest,rate_limit}}"
    )
    print("Ctrl-C to stop.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
