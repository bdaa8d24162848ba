"""The Discord adapter: discord.py's client on its own thread, behind the core's synchronous adapter interface.

Threads. The core is synchronous and calls ``send_direct`` and friends from its outbox thread, so the adapter runs
discord.py's client on a thread with its own event loop. Sync methods submit a coroutine to that loop and wait
for it with a timeout; the dispatcher (sync, possibly slow) is called from a small thread pool, never on the loop.

Interactions. Discord wants an answer to an interaction within 3 seconds, and a modal can only be the first
answer. So the dispatcher gets ``ack_budget`` seconds (2 by default): if it answers in time, its response is the
interaction's answer (a modal, an in-place edit, an ephemeral message); if not, the interaction is deferred and
the response follows as an edit of the original message or a followup. (A modal that comes too late cannot be
opened any more; the person is asked to press again.) A duplicate delivery of an interaction carries the same
``dedupe_key``; the core's dedupe makes handling it idempotent, and Discord refuses the second answer.

Intents, and why each (see :func:`intents_for`):

* ``guilds``: the guild, channel, thread and role cache: role names for the core's role mapping, text vs forum
  channels for cohort posts, thread owners to recognise our threads.
* ``guild_messages``: MESSAGE_CREATE in cohort threads, so a reply completes a prompt step.
* ``voice_states``: VOICE_STATE_UPDATE, for automatic attendance from voice/stage presence.
* ``guild_scheduled_events``: GUILD_SCHEDULED_EVENT_USER_ADD/REMOVE, for "Interested" RSVPs.
* ``message_content`` (privileged) only when ``read_message_content`` is set. A prompt step is completed by the
  reply itself (author, thread, message id), which Discord sends without the intent; only the reply's text is
  blanked. Leave it off unless the core must read what learners wrote (it is then ``ThreadReply.text``); a bot in
  100 or more servers needs Discord's approval for it.

Not requested: ``members`` (privileged: interactions and voice updates carry the member with its roles, and
``profile`` uses ``GET /guilds/{id}/members/{user}``, which needs no intent), ``presences`` (privileged, unused) and
``dm_messages`` (buttons and forms in DMs arrive as interactions, which need no intent; DM text is never read).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import re
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import aiohttp
import discord
from discord import app_commands

from bot.adapters.discord import convert, render
from bot.adapters.discord.commands import learn_group
from bot.adapters.discord.endpoints import configure_endpoints
from bot.adapters.discord.presence import PresenceTracker, TrackedSession
from bot.adapters.discord.ui import ActionButton
from bot.clock import Clock, SystemClock
from bot.errors import AdapterError
from bot.events import (
    Actor,
    InboundEvent,
    PresenceObserved,
    Response,
    RsvpChanged,
    ThreadReply,
)
from bot.messages import Message, MessageRef
from bot.ports import SORRY, Adapter, ChannelTarget, LiveSession, Profile, Recipient

if TYPE_CHECKING:
    from bot.ports import InboundHandler

logger = logging.getLogger(__name__)
T = TypeVar("T")
InteractionKind = Literal["component", "modal", "command"]

# Learner-facing fallbacks for when the dispatcher gives nothing usable.
GENERIC_ERROR = SORRY
DONE = "Done."
MODAL_TOO_LATE = "That form took too long to open. Please press the button again."

_SCHEDULED_EVENT_USER = "GUILD_SCHEDULED_EVENT_USER_"
#: How far ahead an event for a session already under way starts: Discord takes no start in the past, and the
#: margin covers the request's way there and a little clock skew.
UNDER_WAY_LEAD = timedelta(seconds=30)
_CHANNEL_MENTION = re.compile(r"<#(\d+)>")


def intents_for(read_message_content: bool = False) -> discord.Intents:
    """The gateway intents the adapter needs; the module docstring says why each one."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.voice_states = True
    intents.guild_scheduled_events = True
    intents.message_content = read_message_content
    return intents


def _snowflake(raw: str | int, what: str) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise AdapterError(f"{what} {raw!r} is not a Discord id", retryable=False) from None
    if value <= 0:
        raise AdapterError(f"{what} {raw!r} is not a Discord id", retryable=False)
    return value


def http_error(what: str, exc: discord.HTTPException) -> AdapterError:
    """Map a Discord HTTP failure: 429 and 5xx are worth retrying, 403/404 and other 4xx are not."""
    status = exc.status
    detail = f"Discord {what} failed: HTTP {status}" + (f" (code {exc.code})" if exc.code else "")
    if exc.text:
        detail += f": {exc.text}"
    if status == 429:
        retry_after: float | None = None
        header = exc.response.headers.get("Retry-After") if exc.response is not None else None
        try:
            retry_after = float(header) if header else None
        except ValueError:
            retry_after = None
        return AdapterError(detail, retryable=True, retry_after=retry_after)
    return AdapterError(detail, retryable=status >= 500)


class _Client(discord.Client):
    """discord.py's client, forwarding the events the adapter listens to."""

    def __init__(self, bridge: DiscordAdapter, **options: Any) -> None:
        super().__init__(**options)
        self.bridge = bridge
        self.tree = app_commands.CommandTree(self)
        self.tree.error(bridge.on_command_error)

    async def setup_hook(self) -> None:
        await self.bridge.setup(self)
        guard_interaction_parser(self)

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        # An event handler that failed has nobody waiting on it: one line, the traceback only at DEBUG, so a
        # stream of odd events cannot fill the log with tracebacks.
        exc = sys.exc_info()[1]
        logger.error("Dropped a Discord %s that could not be handled: %s: %s", event_method, type(exc).__name__, exc)
        logger.debug("Traceback of the dropped Discord %s", event_method, exc_info=True)

    async def on_ready(self) -> None:
        await self.bridge.on_ready()

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        await self.bridge.on_interaction(interaction)

    async def on_message(self, message: discord.Message) -> None:
        await self.bridge.on_message(message)

    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        await self.bridge.on_voice_state_update(member, before, after)

    async def on_socket_raw_receive(self, msg: str) -> None:
        await self.bridge.on_socket_raw_receive(msg)

    async def on_scheduled_event_create(self, event: discord.ScheduledEvent) -> None:
        self.bridge.on_scheduled_event(event)

    async def on_guild_available(self, guild: discord.Guild) -> None:
        self.bridge.on_guild_available(guild)


def guard_interaction_parser(client: discord.Client) -> None:
    """Check every INTERACTION_CREATE before discord.py parses it, and keep a parse failure from stopping the client.

    discord.py parses gateway events in its receive loop, where an exception ends the connection. Its parsers sit
    in one dict per connection (``ConnectionState.parsers``, shared with the gateway), so wrapping the entry is
    enough: a malformed interaction is dropped with one log line and the next frame is read as usual.
    """
    parsers: dict[str, Callable[[Any], None]] = client._connection.parsers
    original = parsers.get("INTERACTION_CREATE")
    if original is None or getattr(original, "blendwise_guard", False):
        return

    def guarded(data: Any) -> None:
        try:
            problem = convert.interaction_problem(data)
            if problem is not None:
                logger.warning("Dropped a malformed Discord interaction: %s", problem)
                return
            original(data)
        except Exception as exc:
            logger.error("Dropped a Discord interaction discord.py could not read: %s: %s", type(exc).__name__, exc)
            logger.debug("Traceback of the dropped Discord interaction", exc_info=True)

    guarded.blendwise_guard = True  # type: ignore[attr-defined]
    parsers["INTERACTION_CREATE"] = guarded


def _one_line_task_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's handler for errors nobody awaited (a discord.py view task that failed on an odd message): one
    line, the traceback only at DEBUG."""
    exc = context.get("exception")
    logger.error("Discord background task failed: %s", f"{type(exc).__name__}: {exc}" if exc else context.get("message"))
    logger.debug("Traceback of the failed Discord task", exc_info=exc)


class DiscordAdapter(Adapter):
    """Runs a blended program inside a Discord server.

    Args:
        token: the bot token (``DISCORD_TOKEN``). Never logged.
        guild_ids: the server(s) the bot serves; the first is the workspace of DM actions. ``/learn`` is registered
            in each of them (guild commands appear at once; with none, it is registered globally).
        cohort_channels: cohort name or id -> channel id (text or forum) for ``send_channel``.
        lead_roles, admin_roles: the Discord role names the core maps to lead and admin. The adapter passes every
            role name in ``Actor.platform_roles`` and maps these to the core roles in ``Actor.roles``; it checks at
            start-up that these roles exist.
        api_url, gateway_url: ``DISCORD_API_URL`` / ``DISCORD_GATEWAY_URL``; ``None`` for Discord itself.
        voice_min_minutes: minutes in a session's voice/stage channel that count as attendance when the session's
            step sets no ``checkin.min_minutes`` (``LiveSession.min_minutes``).
        read_message_content: request the privileged MESSAGE_CONTENT intent, to pass reply text on.
        sync_commands: upload the ``/learn`` definitions at start-up (``PUT .../commands``).
        clock: the time source for presence minutes.
        ack_budget: seconds the dispatcher gets before an interaction is deferred (Discord allows 3 in total).
        call_timeout: seconds a sync call waits for Discord before raising a retryable ``AdapterError``.
        ready_timeout: seconds ``start`` waits for the gateway's READY.
        max_ratelimit_timeout: rate-limit waits up to this many seconds are slept through by discord.py; longer
            ones raise ``AdapterError(retry_after=...)`` so the outbox backs off instead (discord.py's minimum: 30).
        guild_ready_timeout: discord.py's wait for GUILD_CREATEs after READY.
        presence_interval: seconds between checks of members sitting in a session's channel.
        handler_threads: threads calling the dispatcher.
    """

    platform = "discord"

    def __init__(
        self,
        *,
        token: str,
        guild_ids: Iterable[str | int],
        cohort_channels: Mapping[str, str | int] | None = None,
        lead_roles: Iterable[str] = (),
        admin_roles: Iterable[str] = (),
        api_url: str | None = None,
        gateway_url: str | None = None,
        voice_min_minutes: float = 10.0,
        voice_channel: str | None = None,
        read_message_content: bool = False,
        sync_commands: bool = True,
        clock: Clock | None = None,
        ack_budget: float = 2.0,
        call_timeout: float = 60.0,
        ready_timeout: float = 60.0,
        max_ratelimit_timeout: float = 30.0,
        guild_ready_timeout: float = 2.0,
        presence_interval: float = 30.0,
        handler_threads: int = 4,
    ) -> None:
        if not token:
            raise AdapterError("DISCORD_TOKEN is empty", retryable=False)
        self._token = token
        self.guild_ids = [str(_snowflake(g, "guild id")) for g in guild_ids]
        if not self.guild_ids:
            raise AdapterError("the Discord adapter needs at least one guild id", retryable=False)
        self.cohort_channels = {str(k): str(v) for k, v in (cohort_channels or {}).items()}
        self.lead_roles = tuple(lead_roles)
        self.admin_roles = tuple(admin_roles)
        self.api_url = api_url
        self.gateway_url = gateway_url
        #: The voice or stage channel of mirrored sessions that name none: the core knows no platform's channels.
        self.voice_channel = voice_channel
        self.read_message_content = read_message_content
        self.sync_commands = sync_commands
        self.clock: Clock = clock or SystemClock()
        self.ack_budget = ack_budget
        self.call_timeout = call_timeout
        self.ready_timeout = ready_timeout
        self.max_ratelimit_timeout = max_ratelimit_timeout
        self.guild_ready_timeout = guild_ready_timeout
        self.presence_interval = presence_interval
        self._handler_threads = handler_threads
        self.presence = PresenceTracker(min_minutes=voice_min_minutes)

        self._handler: InboundHandler | None = None
        self._client: _Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._state_lock = threading.Lock()
        self._deliveries: dict[tuple[str, int, int], MessageRef] = {}
        self._session_events: dict[str, str] = {}
        self._interested: dict[str, set[str]] = {}
        self._not_threads: set[int] = set()

    @property
    def intents(self) -> discord.Intents:
        return intents_for(self.read_message_content)

    # ------------------------------------------------------------------------------------------- lifecycle
    def start(self, dispatcher: InboundHandler) -> None:
        """Log in, connect to the gateway and return once READY (or raise ``AdapterError``)."""
        if self._thread is not None:
            raise RuntimeError("the Discord adapter is already running")
        configure_endpoints(self.api_url, self.gateway_url)
        self._handler = dispatcher
        self._ready.clear()
        self._failure = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            self._handler_threads, thread_name_prefix="discord-in"
        )
        self._thread = threading.Thread(target=self._run_loop, name="discord-adapter", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.ready_timeout):
            self.stop()
            raise AdapterError(
                f"Discord did not become ready within {self.ready_timeout:.0f}s", retryable=True
            )
        if self._failure is not None:
            failure = self._failure
            self.stop()
            if isinstance(failure, discord.LoginFailure):
                raise AdapterError("Discord refused the bot token (DISCORD_TOKEN)", retryable=False) from None
            if isinstance(failure, discord.PrivilegedIntentsRequired):
                raise AdapterError(
                    "Discord refused a privileged intent: enable MESSAGE CONTENT INTENT for the bot in the developer "
                    "portal, or turn read_message_content off",
                    retryable=False,
                ) from None
            raise AdapterError(f"Discord connection failed: {type(failure).__name__}: {failure}") from None

    def stop(self) -> None:
        """Close the gateway and HTTP sessions and join the thread. Safe to call twice."""
        loop, client, thread = self._loop, self._client, self._thread
        alive = thread is not None and thread.is_alive()
        if loop is not None and client is not None and alive and not client.is_closed():
            future = asyncio.run_coroutine_threadsafe(self._close(client), loop)
            try:
                future.result(15)
            except concurrent.futures.CancelledError:
                pass  # the loop was already ending (the client had stopped by itself)
            except (concurrent.futures.TimeoutError, RuntimeError):
                logger.warning("the Discord client did not close within 15s")
        if thread is not None:
            thread.join(15)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._thread = None
        self._loop = None
        self._client = None
        self._executor = None
        self._ready.clear()

    async def _close(self, client: _Client) -> None:
        for task in list(self._background):
            task.cancel()
        await client.close()

    def _run_loop(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(_one_line_task_errors)
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        client = _Client(
            self,
            intents=self.intents,
            allowed_mentions=render.NO_MENTIONS,
            # For on_socket_raw_receive: GUILD_SCHEDULED_EVENT_USER_ADD/REMOVE are dropped by discord.py when the
            # user is not cached, which without the members intent is the usual case. Only the receive side is
            # listened to (the send side would carry IDENTIFY, with the token).
            enable_debug_events=True,
            max_ratelimit_timeout=self.max_ratelimit_timeout,
            guild_ready_timeout=self.guild_ready_timeout,
            chunk_guilds_at_startup=False,
        )
        self._client = client
        try:
            async with client:
                await client.start(self._token)
        except Exception as exc:
            if not self._ready.is_set():
                self._failure = exc
                self._ready.set()
            else:
                logger.exception("the Discord client stopped")

    async def setup(self, client: _Client) -> None:
        """discord.py's ``setup_hook``: after login, before the gateway."""
        client.add_dynamic_items(ActionButton)
        guilds = [discord.Object(int(g)) for g in self.guild_ids]
        handler = self._handler
        # Every core subcommand, features' included, from the core's registry: never a list of our own.
        subcommands = handler.subcommands() if handler is not None else []
        client.tree.add_command(learn_group(subcommands), guilds=guilds)
        if self.sync_commands:
            for guild in guilds:
                await client.tree.sync(guild=guild)

    async def on_ready(self) -> None:
        if self._ready.is_set():
            return
        self._spawn(self._presence_loop())
        self._ready.set()
        logger.info("Discord adapter ready in %d guild(s)", len(self.guild_ids))

    def on_guild_available(self, guild: discord.Guild) -> None:
        if str(guild.id) not in self.guild_ids:
            return
        names = {role.name for role in guild.roles}
        for role in (*self.lead_roles, *self.admin_roles):
            if role not in names:
                logger.warning("configured Discord role %r does not exist in guild %s", role, guild.id)
        for event in guild.scheduled_events:
            self.on_scheduled_event(event)

    def on_scheduled_event(self, event: discord.ScheduledEvent) -> None:
        """Track attendance for our voice/stage events, including those created before a restart."""
        client = self._client
        if client is None or client.user is None or event.creator_id != client.user.id:
            return
        if event.channel_id is None or event.end_time is None or str(event.guild_id) not in self.guild_ids:
            return
        if event.status in (discord.EventStatus.completed, discord.EventStatus.cancelled):
            return
        if str(event.id) in self.presence.sessions:
            # The gateway's echo of an event this process created and tracks: keep the session's own window (the
            # event of a session already under way starts a little later than the session, see _event_start).
            return
        session = TrackedSession(
            str(event.id), str(event.guild_id), str(event.channel_id), event.start_time, event.end_time
        )
        self._track(session)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------------------------------- sync plumbing
    def _call(self, what: str, make: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """Run ``make()`` on the client's loop and wait for it, mapping failures to ``AdapterError``."""
        loop, client = self._loop, self._client
        if loop is None or client is None or not self._ready.is_set() or client.is_closed():
            raise AdapterError(f"Discord {what}: the adapter is not connected", retryable=True)
        if threading.current_thread() is self._thread:
            raise RuntimeError(f"Discord {what} called on the adapter's own loop thread; it would deadlock")
        timeout = timeout or self.call_timeout

        async def guarded() -> T:
            try:
                return await make()
            except AdapterError:
                raise
            except discord.RateLimited as exc:
                raise AdapterError(
                    f"Discord {what}: rate limited for {exc.retry_after:.1f}s",
                    retryable=True,
                    retry_after=exc.retry_after,
                ) from None
            except discord.HTTPException as exc:
                raise http_error(what, exc) from None
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise AdapterError(f"Discord {what}: connection problem ({type(exc).__name__})") from None

        future = asyncio.run_coroutine_threadsafe(guarded(), loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise AdapterError(
                f"Discord {what}: no answer within {timeout:.0f}s; the outcome is unknown"
            ) from None

    def _handle(self, event: InboundEvent) -> Response:
        """Call the dispatcher (on a worker thread); expected failures become an ephemeral reply."""
        return self.answer(self._handler, self._with_core_roles(event))

    def _with_core_roles(self, event: InboundEvent) -> InboundEvent:
        """Map the member's Discord roles to the core's roles with this adapter's settings: the core never sees a
        Discord role name or setting."""
        actor = event.actor
        names = set(actor.platform_roles)
        roles = tuple(
            role for role, configured in (("admin", self.admin_roles), ("lead", self.lead_roles)) if names & set(configured)
        )
        return dataclasses.replace(event, actor=dataclasses.replace(actor, roles=roles)) if roles else event

    async def _dispatch(self, event: InboundEvent) -> Response:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._handle, event)

    @property
    def primary_guild(self) -> str:
        return self.guild_ids[0]

    @property
    def client(self) -> discord.Client:
        if self._client is None:
            raise AdapterError("the Discord adapter is not running", retryable=True)
        return self._client

    # ------------------------------------------------------------------------------------------- outbound
    def send_direct(self, to: Recipient, message: Message) -> MessageRef:
        user_id = _snowflake(to.user_id, "user id")

        async def go() -> MessageRef:
            channel = await self.client.create_dm(discord.Object(user_id))
            return await self._send_parts(channel, message)

        ref = self._call("send_direct", go)
        self._remember(to.user_id, message, ref)
        return ref

    def _remember(self, where: str, message: Message, ref: MessageRef) -> None:
        if message.delivery_id is not None:
            with self._state_lock:
                self._deliveries[(where, message.delivery_id, message.part)] = ref

    def find_delivery(
        self, to: Recipient | ChannelTarget, delivery_id: int, part: int = 1
    ) -> MessageRef | None:
        """What this process sent for part ``part`` of ``delivery_id``. Across processes, Discord's
        ``enforce_nonce`` (the nonce is derived from the delivery id and part) returns the first message instead
        of posting a second one for a few minutes; message history does not expose nonces, so nothing older can
        be found."""
        where = to.user_id if isinstance(to, Recipient) else to.channel
        with self._state_lock:
            return self._deliveries.get((where, delivery_id, part))

    def send_channel(
        self, workspace: str, channel: str, message: Message, thread: str | None = None
    ) -> MessageRef:
        """Post to a cohort channel (a cohort name from ``cohort_channels`` or a channel id).

        With ``thread``, post in that thread (``thread`` is the thread id, which is also its first message's id).
        Without, a prompt opens a discussion: a thread on the post in a text channel, a post in a forum channel
        (where everything is a post). The returned ref names the parent channel and the thread's id, like a Slack
        thread's parent ts, and later ``ThreadReply`` events carry the same pair.
        """
        channel_id = self._channel_id(channel)
        thread_id = _snowflake(thread, "thread id") if thread else None

        async def go() -> MessageRef:
            client = self.client
            if thread_id is not None:
                target = client.get_channel(thread_id) or client.get_partial_messageable(thread_id)
                return await self._send_parts(target, message)  # type: ignore[arg-type]
            target_channel = client.get_channel(channel_id) or await client.fetch_channel(channel_id)
            if isinstance(target_channel, discord.ForumChannel):
                return await self._forum_post(target_channel, message)
            if not isinstance(target_channel, discord.abc.Messageable):
                raise AdapterError(f"Discord channel {channel_id} cannot hold messages", retryable=False)
            if (message.kind == "prompt" or message.opens_thread) and isinstance(
                target_channel, discord.TextChannel
            ):
                return await self._thread_post(target_channel, message)
            return await self._send_parts(target_channel, message)

        ref = self._call("send_channel", go)
        self._remember(channel, message, ref)
        return ref

    def update(self, ref: MessageRef, message: Message) -> None:
        channel_id = _snowflake(ref.channel, "channel id")
        message_id = _snowflake(ref.ts, "message id")

        async def go() -> None:
            client = self.client
            where = channel_id
            if isinstance(client.get_channel(channel_id), discord.ForumChannel):
                where = (
                    message_id  # a forum post's first message lives in the post (thread), which has its id
                )
            partial = client.get_partial_messageable(where).get_partial_message(message_id)
            await partial.edit(**render.render_single(message).edit_kwargs())

        self._call("update", go)

    def default_workspace(self) -> str | None:
        """The configured guild when there is exactly one; with several, the operator must say which one."""
        return self.guild_ids[0] if len(self.guild_ids) == 1 else None

    def profile(self, workspace: str, user_id: str) -> Profile | None:
        uid = _snowflake(user_id, "user id")

        async def go() -> Profile | None:
            client = self.client
            guild = client.get_guild(int(workspace)) if workspace.isdigit() else None
            try:
                if guild is not None:
                    member = guild.get_member(uid) or await guild.fetch_member(uid)
                    return Profile(name=member.display_name)
                user = client.get_user(uid) or await client.fetch_user(uid)
                return Profile(name=user.display_name)
            except discord.NotFound:
                return None

        return self._call("profile", go)

    def channel_ready(self, workspace: str, channel: str) -> bool:
        """Whether ``channel`` resolves to a text or forum channel the bot can see."""
        try:
            channel_id = self._channel_id(channel)
        except AdapterError:
            return False
        client = self._client
        found = client.get_channel(channel_id) if client is not None else None
        return isinstance(found, discord.TextChannel | discord.ForumChannel | discord.Thread)

    def _channel_id(self, channel: str) -> int:
        """A cohort name from ``cohort_channels``, a channel id, or a channel mention ``<#id>`` (what a lead types
        in ``/learn cohort create ... #channel``)."""
        mapped = self.cohort_channels.get(channel, channel)
        mention = _CHANNEL_MENTION.fullmatch(str(mapped))
        if mention is not None:
            mapped = mention[1]
        if not str(mapped).isdigit():
            raise AdapterError(f"no Discord channel configured for cohort {channel!r}", retryable=False)
        return int(mapped)

    @staticmethod
    def _nonce(message: Message, part: int) -> str | None:
        """Discord's ``enforce_nonce`` returns the first message for a repeated nonce (for a few minutes), so a
        retried delivery cannot post twice. The outbox sends every part of a multi-part lesson under the same
        delivery id, so the nonce also covers the content; Discord allows 25 characters."""
        if message.delivery_id is None:
            return None
        seed = "\x1f".join(
            (f"{message.delivery_id}.{message.part}", str(part), message.kind, message.title, message.text, message.body)
        )
        return "bw" + hashlib.sha256(seed.encode()).hexdigest()[:23]

    async def _send_parts(self, channel: discord.abc.Messageable, message: Message) -> MessageRef:
        sent: discord.Message | None = None
        for n, part in enumerate(render.render(message)):
            kwargs = part.send_kwargs()
            nonce = self._nonce(message, n)
            if nonce is not None:
                kwargs["nonce"] = nonce
            sent = await channel.send(**kwargs)
        assert sent is not None
        return MessageRef(self.platform, str(sent.channel.id), str(sent.id))

    async def _thread_post(self, channel: discord.TextChannel, message: Message) -> MessageRef:
        parts = render.render(message)
        root: discord.Message | None = None
        for n, part in enumerate(parts):
            kwargs = part.send_kwargs()
            nonce = self._nonce(message, n)
            if nonce is not None:
                kwargs["nonce"] = nonce
            sent = await channel.send(**kwargs)
            root = root or sent
        assert root is not None
        if root.thread is None:
            await root.create_thread(name=render.thread_name(message))
        return MessageRef(self.platform, str(channel.id), str(root.id))

    async def _forum_post(self, forum: discord.ForumChannel, message: Message) -> MessageRef:
        first, *rest = render.render(message)
        kwargs = first.send_kwargs()
        if not kwargs.get("content"):
            kwargs.pop("content", None)
        created = await forum.create_thread(name=render.thread_name(message), **kwargs)
        for part in rest:
            await created.thread.send(**part.send_kwargs())
        return MessageRef(self.platform, str(forum.id), str(created.thread.id))

    # ------------------------------------------------------------------------------------------- scheduled events
    def on_session_scheduled(self, session: LiveSession) -> str | None:
        """Mirror a live session as a Guild Scheduled Event; returns the event id (the ``session_ref`` of the
        RSVP and presence events). A voice or stage ``session.channel`` (id or name) makes a VOICE/STAGE event
        whose attendance is tracked; otherwise it is EXTERNAL with the join URL as its location. Called again for
        the same ``session.key``, it edits the event instead of creating another. A session that names no channel
        gets the configured ``voice_channel``."""
        session = self._in_voice(session)
        guild_id = _snowflake(session.workspace or self.primary_guild, "guild id")
        start = self._event_start(session)

        async def go() -> str:
            guild = self._guild(guild_id)
            kwargs, channel = self._event_kwargs(guild, session, start)
            with self._state_lock:
                existing = self._session_events.get(session.key)
            if existing is not None:
                event = guild.get_scheduled_event(int(existing)) or await guild.fetch_scheduled_event(
                    int(existing)
                )
                event = await event.edit(**kwargs)
            else:
                event = await guild.create_scheduled_event(
                    privacy_level=discord.PrivacyLevel.guild_only, **kwargs
                )
            if channel is not None:
                self._track(
                    TrackedSession.of(str(event.id), str(guild.id), str(channel.id), session)
                )
            return str(event.id)

        event_id = self._call("on_session_scheduled", go)
        with self._state_lock:
            self._session_events[session.key] = event_id
        return event_id

    def on_session_changed(self, session: LiveSession, ref: str) -> None:
        """A mirrored session moved (PATCH the Scheduled Event's times) or was cancelled (its status becomes
        CANCELED, which Discord shows to everyone who marked themselves interested)."""
        session = self._in_voice(session)
        guild_id = _snowflake(session.workspace or self.primary_guild, "guild id")
        event_id = _snowflake(ref, "scheduled event id")

        async def go() -> None:
            guild = self._guild(guild_id)
            event = guild.get_scheduled_event(event_id) or await guild.fetch_scheduled_event(event_id)
            if session.cancelled:
                self.presence.forget(str(event.id))
                if event.status in (discord.EventStatus.scheduled, discord.EventStatus.active):
                    await event.cancel()
                return
            kwargs, channel = self._event_kwargs(guild, session)
            await event.edit(**kwargs)
            if channel is not None:
                self._track(TrackedSession.of(str(event.id), str(guild.id), str(channel.id), session))

        self._call("on_session_changed", go)

    def _guild(self, guild_id: int) -> discord.Guild:
        guild = self.client.get_guild(guild_id)
        if guild is None:
            raise AdapterError(f"the bot is not in Discord guild {guild_id}", retryable=False)
        return guild

    def _event_kwargs(
        self, guild: discord.Guild, session: LiveSession, start: datetime | None = None
    ) -> tuple[dict[str, Any], discord.VoiceChannel | discord.StageChannel | None]:
        """A Scheduled Event's fields for ``session``: VOICE/STAGE in its channel, else EXTERNAL at the join URL.
        ``start`` replaces the session's start (see :meth:`_event_start`)."""
        name = render.truncate(session.title, 100) or "Live session"
        description = session.description or ""
        channel = self._voice_channel(guild, session.channel) if session.channel else None
        kwargs: dict[str, Any] = {"name": name, "start_time": start or session.start, "end_time": session.end}
        if channel is not None:
            if session.join_url:
                description = f"{description}\n\n{session.join_url}".strip()
            kwargs["channel"] = channel
            kwargs["entity_type"] = (
                discord.EntityType.stage_instance
                if isinstance(channel, discord.StageChannel)
                else discord.EntityType.voice
            )
        else:
            kwargs["entity_type"] = discord.EntityType.external
            kwargs["location"] = render.truncate(session.join_url or "Online", 100)
        kwargs["description"] = render.truncate(render.neutralise(description), 1000)
        return kwargs, channel

    def _event_start(self, session: LiveSession) -> datetime:
        """The start Discord accepts. Discord refuses a ``scheduled_start_time`` in the past (50035), so a session
        already under way when it is first mirrored gets an event starting ``UNDER_WAY_LEAD`` from now; voice
        attendance still counts from the session's real start. A session already over is refused here, without a
        call (the core records the refusal once)."""
        now = self.clock.now()
        if session.end <= now + UNDER_WAY_LEAD:
            raise AdapterError(
                f"Discord scheduled event for {session.title!r}: the session is over, Discord takes no event in the "
                "past",
                retryable=False,
            )
        return max(session.start, now + UNDER_WAY_LEAD)

    def _in_voice(self, session: LiveSession) -> LiveSession:
        if session.channel or not self.voice_channel:
            return session
        return dataclasses.replace(session, channel=self.voice_channel)

    @staticmethod
    def _voice_channel(guild: discord.Guild, wanted: str) -> discord.VoiceChannel | discord.StageChannel:
        for channel in guild.channels:
            if isinstance(channel, discord.VoiceChannel | discord.StageChannel) and wanted in (
                str(channel.id),
                channel.name,
            ):
                return channel
        raise AdapterError(
            f"no voice or stage channel {wanted!r} in Discord guild {guild.id}", retryable=False
        )

    def refresh_session(self, session: LiveSession, ref: str) -> None:
        """The runtime's periodic hook: re-sync "Interested" users and (re)start voice tracking after a restart."""
        self.reconcile_rsvps(ref, session.workspace or None)
        self.track_session(session, ref)

    def reconcile_rsvps(self, event_id: str, workspace: str | None = None) -> list[RsvpChanged]:
        """Compare an event's "Interested" users with what the gateway told us, and pass on the differences.

        Call it periodically: a gateway event can be missed while disconnected. After a restart nothing is known
        yet, so the first call reports everyone interested as going (the core's RSVPs are idempotent) and only
        later calls can report a removal. Returns the events passed to the dispatcher.
        """
        eid = _snowflake(event_id, "scheduled event id")
        guild_ids = [workspace] if workspace else self.guild_ids

        async def go() -> tuple[str, list[tuple[str, str]]]:
            client = self.client
            for gid in guild_ids:
                guild = client.get_guild(int(gid))
                if guild is None:
                    continue
                event = guild.get_scheduled_event(eid)
                if event is None:
                    try:
                        event = await guild.fetch_scheduled_event(eid)
                    except discord.NotFound:
                        continue
                users = [(str(u.id), u.display_name) async for u in event.users(limit=None)]
                return str(guild.id), users
            raise AdapterError(f"no Discord scheduled event {event_id}", retryable=False)

        guild_id, users = self._call("reconcile_rsvps", go)
        current = dict(users)
        with self._state_lock:
            known = self._interested.setdefault(str(eid), set())
            added = sorted(current.keys() - known)
            removed = sorted(known - current.keys())
            known.clear()
            known.update(current)
        changes = [
            RsvpChanged(
                Actor(self.platform, guild_id, uid, current.get(uid, "")), str(eid), going=uid in current
            )
            for uid in added + removed
        ]
        for change in changes:
            self._handle(change)
        return changes

    # ------------------------------------------------------------------------------------------- presence
    def track_session(self, session: LiveSession, ref: str) -> None:
        """Track voice attendance for a session mirrored earlier (e.g. by another process) as event ``ref``."""
        session = self._in_voice(session)
        if not session.channel:
            return

        async def go() -> None:
            guild = self.client.get_guild(_snowflake(session.workspace or self.primary_guild, "guild id"))
            if guild is None:
                raise AdapterError(f"the bot is not in Discord guild {session.workspace}", retryable=False)
            channel = self._voice_channel(guild, session.channel or "")
            self._track(TrackedSession.of(ref, str(guild.id), str(channel.id), session))

        self._call("track_session", go)

    def _track(self, session: TrackedSession) -> None:
        """Track a session, counting members already in its channel from now on."""
        self.presence.track(session)
        client = self._client
        guild = client.get_guild(int(session.workspace)) if client is not None else None
        channel = guild.get_channel(int(session.channel_id)) if guild is not None else None
        if not isinstance(channel, discord.VoiceChannel | discord.StageChannel):
            return
        now = self.clock.now()
        for user_id in channel.voice_states:
            if not self.presence.is_in(session.workspace, str(user_id)):
                member = guild.get_member(user_id) if guild is not None else None
                name = member.display_name if member is not None else ""
                self.presence.moved(session.workspace, str(user_id), session.channel_id, now, name)

    def check_presence(self) -> list[PresenceObserved]:
        """Report members whose minutes reached the session's minimum (its step's ``checkin.min_minutes``, else
        ``voice_min_minutes``); also done every ``presence_interval``."""
        return self._call("check_presence", lambda: self._report_presence(self.clock.now()))

    async def _report_presence(self, now: datetime) -> list[PresenceObserved]:
        observed = [
            PresenceObserved(Actor(self.platform, p.workspace, p.user_id, p.name), p.ref, p.minutes)
            for p in self.presence.due(now)
        ]
        for event in observed:
            await self._dispatch(event)
        return observed

    async def _presence_loop(self) -> None:
        while True:
            await asyncio.sleep(self.presence_interval)
            try:
                now = self.clock.now()
                await self._report_presence(now)
                self.presence.prune(now)
            except Exception:
                logger.exception("presence check failed")

    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        if before.channel == after.channel or str(member.guild.id) not in self.guild_ids:
            return
        now = self.clock.now()
        channel_id = str(after.channel.id) if after.channel is not None else None
        self.presence.moved(str(member.guild.id), str(member.id), channel_id, now, member.display_name)
        await self._report_presence(now)

    # ------------------------------------------------------------------------------------------- RSVPs
    async def on_socket_raw_receive(self, msg: str) -> None:
        if not isinstance(msg, str) or _SCHEDULED_EVENT_USER not in msg:
            return
        payload = json.loads(msg)
        kind = payload.get("t") or ""
        if kind not in ("GUILD_SCHEDULED_EVENT_USER_ADD", "GUILD_SCHEDULED_EVENT_USER_REMOVE"):
            return
        data = payload["d"]
        if str(data.get("guild_id")) not in self.guild_ids or not self._is_ours(data):
            return
        going = kind.endswith("ADD")
        event_id, user_id = str(data["guild_scheduled_event_id"]), str(data["user_id"])
        with self._state_lock:
            known = self._interested.setdefault(event_id, set())
            (known.add if going else known.discard)(user_id)
        user = self._client.get_user(int(user_id)) if self._client is not None else None
        await self._dispatch(convert.rsvp_changed(data, going=going, name=user.display_name if user else ""))

    def _is_ours(self, data: dict[str, Any]) -> bool:
        """Events the bot created; unknown ones (not cached) are passed on, and the core ignores what it never
        scheduled."""
        client = self._client
        guild = client.get_guild(int(data["guild_id"])) if client is not None else None
        event = (
            guild.get_scheduled_event(int(data["guild_scheduled_event_id"])) if guild is not None else None
        )
        if event is None or client is None or client.user is None:
            return True
        return event.creator_id == client.user.id

    # ------------------------------------------------------------------------------------------- thread replies
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.guild is None or str(message.guild.id) not in self.guild_ids:
            return
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        thread = await self._our_thread(message.channel)
        if thread is None:
            return
        event = convert.thread_reply(message, thread)
        response = await self._dispatch(event)
        await self._side_response(event, response, thread)

    async def _our_thread(self, channel: Any) -> discord.Thread | None:
        """The thread ``channel`` if the bot started it (a prompt's discussion), else ``None``."""
        client = self.client
        if channel.id in self._not_threads:
            return None
        if not isinstance(channel, discord.Thread):
            if not isinstance(channel, discord.PartialMessageable):
                return None
            try:
                fetched = await client.fetch_channel(channel.id)
            except discord.HTTPException:
                return None
            if not isinstance(fetched, discord.Thread):
                self._not_threads.add(channel.id)
                return None
            channel = fetched
        if client.user is None or channel.owner_id != client.user.id:
            return None
        return channel

    async def _side_response(self, event: ThreadReply, response: Response, thread: discord.Thread) -> None:
        """A reply is not an interaction: a public response goes into the thread, an ephemeral one by DM."""
        try:
            if response.public is not None:
                await self._send_parts(thread, response.public)
            if response.ephemeral is not None:
                dm = await self.client.create_dm(discord.Object(int(event.actor.user_id)))
                await self._send_parts(dm, response.ephemeral)
        except discord.HTTPException as exc:
            logger.warning("could not answer a thread reply: %s", http_error("reply", exc))

    # ------------------------------------------------------------------------------------------- interactions
    async def on_button(self, interaction: discord.Interaction[Any], action: str, value: str) -> None:
        if not convert.has_user(interaction):
            return
        workspace = convert.workspace_of(interaction, self.primary_guild)
        await self._answer(
            interaction, convert.button_pressed(interaction, action, value, workspace), "component"
        )

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        """Modal submissions, whatever modal object discord.py kept (or lost in a restart)."""
        if interaction.type is not discord.InteractionType.modal_submit or not convert.has_user(interaction):
            return
        workspace = convert.workspace_of(interaction, self.primary_guild)
        event = convert.modal_submitted(interaction, workspace)
        if event is not None:
            await self._answer(interaction, event, "modal")

    async def on_command(
        self,
        interaction: discord.Interaction[Any],
        subcommand: str,
        text: str | None,
        *,
        user: discord.User | discord.Member | None = None,
        attachment: discord.Attachment | None = None,
    ) -> None:
        if not convert.has_user(interaction):
            return
        workspace = convert.workspace_of(interaction, self.primary_guild)
        data: tuple[str, bytes] | None = None
        if attachment is not None:
            # Reading the file must not eat the 3 s: defer first when there is one.
            await interaction.response.defer(ephemeral=True, thinking=True)
            data = (attachment.filename, await attachment.read())
        event = convert.command_invoked(interaction, subcommand, text, workspace, user=user, attachment=data)
        await self._answer(interaction, event, "command")

    async def on_command_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        if isinstance(error, app_commands.CommandNotFound) and not interaction.response.is_done():
            # Discord clients cache command lists, so after an update removed or renamed a subcommand, members
            # still send it for a while. The core answers it as it answers an unknown Slack subcommand.
            event = convert.unknown_subcommand(
                interaction, convert.workspace_of(interaction, self.primary_guild)
            )
            if event is not None:
                await self._answer(interaction, event, "command")
                return
        if isinstance(error, app_commands.CommandInvokeError):
            logger.error("/learn failed", exc_info=error)  # our own code failed: the traceback is wanted
        else:
            # A payload discord.py could not map onto /learn (an option of the wrong type, an unknown command).
            logger.warning("/learn could not run: %s: %s", type(error).__name__, error)
        if not interaction.response.is_done():
            await interaction.response.send_message(GENERIC_ERROR, ephemeral=True)

    async def _answer(
        self, interaction: discord.Interaction[Any], event: InboundEvent, kind: InteractionKind
    ) -> None:
        loop = asyncio.get_running_loop()
        pending = loop.run_in_executor(self._executor, self._handle, event)
        try:
            response = await asyncio.wait_for(asyncio.shield(pending), self.ack_budget)
        except TimeoutError:
            await self._defer(interaction, kind)
            response = await pending
        try:
            await self._reply(interaction, response, kind)
        except AdapterError as err:  # a response Discord cannot show (e.g. too many buttons): say so politely
            logger.error("cannot render the answer to interaction %s: %s", interaction.id, err)
            if not interaction.response.is_done():
                await interaction.response.send_message(GENERIC_ERROR, ephemeral=True)
            else:
                await interaction.followup.send(GENERIC_ERROR, ephemeral=True)
        except discord.HTTPException as exc:
            if exc.code == 40060:
                logger.info("interaction %s was already answered (a duplicate delivery)", interaction.id)
            else:
                logger.warning(
                    "could not answer interaction %s: %s", interaction.id, http_error("reply", exc)
                )

    async def _defer(self, interaction: discord.Interaction[Any], kind: InteractionKind) -> None:
        if interaction.response.is_done():
            return
        try:
            if kind == "command":
                await interaction.response.defer(ephemeral=True, thinking=True)
            else:
                await interaction.response.defer()
        except discord.HTTPException as exc:
            logger.warning("could not defer interaction %s: %s", interaction.id, http_error("defer", exc))

    async def _reply(
        self, interaction: discord.Interaction[Any], response: Response, kind: InteractionKind
    ) -> None:
        """Render the dispatcher's response as the interaction's answer, or as followups after a deferral."""
        answered = interaction.response.is_done()
        thinking = answered and kind == "command"
        if response.modal is not None:
            if not answered:
                await interaction.response.send_modal(render.build_modal(response.modal))
                return
            await interaction.followup.send(
                MODAL_TOO_LATE, ephemeral=True, allowed_mentions=render.NO_MENTIONS
            )
            return
        replied = False
        replace = response.replace
        if replace is not None and interaction.message is not None and kind != "command":
            kwargs = render.render_single(replace).edit_kwargs()
            if answered:
                await interaction.edit_original_response(**kwargs)
            else:
                await interaction.response.edit_message(**kwargs)
                answered = True
        elif replace is not None:
            response = Response(ephemeral=response.ephemeral or replace, public=response.public)
        if response.ephemeral is not None:
            kwargs = render.render_single(response.ephemeral).send_kwargs()
            if answered:
                await interaction.followup.send(ephemeral=True, **kwargs)
            else:
                await interaction.response.send_message(ephemeral=True, **kwargs)
                answered = True
            replied = True
        if response.public is not None:
            if not answered and kind == "command":
                await interaction.response.send_message(**render.render_single(response.public).send_kwargs())
                answered = replied = True
            elif interaction.channel is not None and isinstance(interaction.channel, discord.abc.Messageable):
                await self._send_parts(interaction.channel, response.public)
        if not answered:
            if kind == "command":
                await interaction.response.send_message(DONE, ephemeral=True)
            else:
                await interaction.response.defer()
        elif thinking and not replied:
            await interaction.followup.send(DONE, ephemeral=True)
