"""The Slack adapter: outbound delivery through the Web API, inbound events through a bolt ``App``.

Outbound (the outbox's sender thread calls these): ``send_direct`` opens the learner's DM and posts Block Kit with a
fallback text and delivery metadata, then uploads attachments (an .ics invite) with files_upload_v2. Posts are
paced per channel and per workspace by :class:`~bot.adapters.slack.pacing.Pacer`; short 429s are retried inside
slack_sdk, longer ones and final failures become :class:`~bot.errors.AdapterError` with ``retry_after`` so the
outbox backs off.

Inbound: every bolt listener acks at once and hands the work to a lazy listener on the adapter's worker pool
(``process_before_response=True`` plus ``lazy=``). Slack wants an ack within 3 seconds and retries events that do
not get one, so nothing slow (the dispatcher's database work, Web API calls) may run before the ack. The dispatcher's
:class:`~bot.events.Response` is rendered after that: an ephemeral reply (response_url or chat.postEphemeral), an
in-place update (chat.update of the pressed message) or a modal (views.open with the request's trigger_id).

HTTP mode serves ``POST /slack/events`` (events, interactivity and slash commands) and ``GET /healthz`` on a
background thread; Socket Mode is used instead when an app-level token is given.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.error import URLError
from urllib.parse import parse_qs

from slack_bolt import App, BoltRequest
from slack_bolt.error import BoltError
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_bolt.request.internals import parse_body as bolt_parse_body
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest as RetryRequest
from slack_sdk.http_retry.response import HttpResponse as RetryResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from bot import metrics, replies
from bot.adapters.slack import convert, files
from bot.adapters.slack.convert import ReplyTarget
from bot.adapters.slack.manifest import BOT_SCOPES
from bot.adapters.slack.pacing import WORKSPACE_HEADROOM, Pacer, SeenKeys
from bot.adapters.slack.render import (
    DELIVERY_EVENT_TYPE,
    SlackMessage,
    render_home,
    render_message,
    render_modal,
    render_single,
)
from bot.errors import AdapterError, ConfigError, InvalidInput
from bot.events import Actor, InboundEvent, Response
from bot.messages import Attachment, Message, MessageRef, Modal
from bot.ports import Adapter, ChannelTarget, InboundHandler, Profile, Recipient
from bot.web import Handler, HttpRequest, HttpResult, WebApp, WebServer

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
    from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
    from slack_sdk.web import SlackResponse
    from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)


class _QuietBolt(logging.Filter):
    """bolt reads SLACK_BOT_TOKEN from the environment even when given a client, then warns that it ignores it.
    We always pass the client (that is how SLACK_API_URL reaches bolt), so the warning is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("As you gave `client` as well")


_bolt_logger = logging.getLogger("bot.adapters.slack.bolt")
_bolt_logger.addFilter(_QuietBolt())

PLATFORM = "slack"
DEFAULT_API_URL = "https://slack.com/api/"
EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"

# Replies the adapter itself gives; everything else a learner reads comes from the dispatcher.
TRIGGER_EXPIRED = "That took a little too long to open. Please press the button again."

# Slack answers HTTP 200 with ``ok: false`` for logical errors (invalid_auth, channel_not_found, invalid_blocks,
# not_in_channel...), which no retry fixes. Only these codes, HTTP 429 and 5xx mean "try again later".
_TRANSIENT_ERRORS = frozenset(
    {
        "fatal_error",
        "internal_error",
        "ratelimited",
        "request_timeout",
        "service_unavailable",
        "team_added_to_org",
    }
)


class SlackCallError(AdapterError):
    """A failed Web API call, keeping Slack's error code (``channel_not_found``...) and the HTTP status."""

    def __init__(
        self,
        method: str,
        error: str,
        *,
        status: int | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
    ) -> None:
        self.method = method
        self.error = error
        self.status = status
        detail = f" (HTTP {status})" if status and status != 200 else ""
        wait = f", retry after {retry_after:g}s" if retry_after is not None else ""
        super().__init__(
            f"Slack {method} failed: {error}{detail}{wait}", retryable=retryable, retry_after=retry_after
        )


def _header(headers: object, name: str) -> str | None:
    """A header value from slack_sdk's response headers (a dict of str or of lists), case-insensitively."""
    if not isinstance(headers, dict):
        return None
    for key, value in headers.items():
        if str(key).lower() == name:
            if isinstance(value, list | tuple):
                return str(value[0]) if value else None
            return str(value)
    return None


def _retry_after(headers: object) -> float | None:
    raw = _header(headers, "retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def api_error(method: str, exc: SlackApiError) -> SlackCallError:
    """Map a final SlackApiError to an AdapterError the outbox can act on. Never includes request data (tokens)."""
    response = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    data = getattr(response, "data", None)
    error = str(data.get("error") or "unknown_error") if isinstance(data, dict) else "unexpected_response"
    error = re.sub(r"[^\w.:-]+", " ", error)[:120].strip() or "unknown_error"
    if status == 429 or error == "ratelimited":
        retry_after = _retry_after(getattr(response, "headers", None))
        return SlackCallError(
            method, "ratelimited", status=status, retry_after=retry_after if retry_after else 1.0
        )
    return SlackCallError(method, error, status=status, retryable=status >= 500 or error in _TRANSIENT_ERRORS)


class BoundedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """slack_sdk's 429 retry, but only for short waits: a long Retry-After goes back to the outbox rather than
    holding the sender thread (or a worker) asleep."""

    def __init__(self, max_retry_count: int = 1, max_wait: float = 5.0) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: RetryRequest,
        response: RetryResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        assert response is not None  # the parent only retries when there is a 429 response
        wait = _retry_after(response.headers)
        return wait is None or wait <= self.max_wait


class SlackAdapter(Adapter):
    """Delivers Blendwise messages in Slack and turns Slack interactions into core events.

    Args:
        bot_token: the ``xoxb-`` token (single-workspace mode).
        signing_secret: verifies inbound HTTP requests; required in HTTP mode.
        api_url: Web API base URL (``SLACK_API_URL``), for tests and proxies; used by every WebClient, bolt's too.
        app_token: the ``xapp-`` token; when set, inbound traffic uses Socket Mode instead of HTTP.
        port: the HTTP port (``0`` picks a free one; see :attr:`port`).
        host: the interface to bind in HTTP mode.
        per_channel_interval: minimum seconds between two posts to one channel.
        workspace_rate: posts per second allowed across one workspace.
        client_id: OAuth client id (multi-workspace mode, with ``client_secret`` and ``oauth_engine``).
        client_secret: OAuth client secret.
        oauth_engine: the SQLAlchemy engine holding bolt's installation and OAuth state tables.
        oauth_redirect_uri: the public redirect URL registered with Slack, if not derived by Slack from the app.
        max_retry_wait: 429s asking for at most this many seconds are retried in place; longer ones are raised.
        server_error_retries: in-place retries for HTTP 500/503.
        timeout: seconds per Web API call.
        workers: threads that run the dispatcher after an ack.
        history_limit: how many recent DM messages ``find_delivery`` searches.
    """

    platform = PLATFORM

    def __init__(
        self,
        *,
        bot_token: str | None = None,
        signing_secret: str | None = None,
        api_url: str | None = None,
        app_token: str | None = None,
        port: int = 3000,
        host: str = "0.0.0.0",  # noqa: S104 - Slack must reach the endpoint; a proxy usually fronts it
        per_channel_interval: float = 1.0,
        workspace_rate: float = 5.0,
        client_id: str | None = None,
        client_secret: str | None = None,
        oauth_engine: Engine | None = None,
        oauth_redirect_uri: str | None = None,
        max_retry_wait: float = 5.0,
        server_error_retries: int = 2,
        timeout: int = 30,
        workers: int = 8,
        history_limit: int = 100,
    ) -> None:
        oauth = _check_credentials(bot_token, signing_secret, app_token, client_id, client_secret, oauth_engine)
        if workers < 1:
            raise ConfigError("slack.workers", "must be at least 1")
        self._bot_token = bot_token
        self._signing_secret = signing_secret
        self._api_url = (api_url or DEFAULT_API_URL).rstrip("/") + "/"
        self._app_token = app_token
        self._host = host
        self._requested_port = port
        self._client_id = client_id
        self._client_secret = client_secret
        self._oauth_redirect_uri = oauth_redirect_uri
        self._max_retry_wait = max_retry_wait
        self._server_error_retries = server_error_retries
        self._timeout = timeout
        self._workers = workers
        self._history_limit = history_limit

        self._pacer = Pacer(per_channel_interval, workspace_rate)
        #: The budget the outbox shares across workers, kept below the configured rate so 429s stay rare.
        self.workspace_rate: float | None = workspace_rate / WORKSPACE_HEADROOM
        #: Destinations whose next post already has a slot from :meth:`reserve` (so ``_post`` does not pace again).
        self._prepaid: set[tuple[str, str]] = set()
        self._seen = SeenKeys()
        self._verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._dm_channels: dict[tuple[str, str], str] = {}
        self._channel_workspace: dict[str, str] = {}
        self._clients: dict[str, WebClient] = {}
        self._default_client = self._new_client(bot_token) if bot_token and not oauth else None
        self._default_post_client = (
            self._new_client(bot_token, posting=True) if bot_token and not oauth else None
        )
        self._post_clients: dict[str, WebClient] = {}

        self._installation_store: SQLAlchemyInstallationStore | None = None
        self._state_store: SQLAlchemyOAuthStateStore | None = None
        if oauth:
            assert client_id is not None and oauth_engine is not None
            self._installation_store, self._state_store = _oauth_stores(client_id, oauth_engine)

        self._handler: InboundHandler | None = None
        self._app: App | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._server: WebServer | None = None
        #: True when the runtime's web tier serves this adapter's routes (``web_routes``) instead of its own server.
        self.shared_web = False
        self._socket: SocketModeHandler | None = None
        self.team_id: str | None = None
        self.bot_user_id: str | None = None

    # ----------------------------------------------------------------------------------------------------------
    # Lifecycle

    @property
    def port(self) -> int:
        """The bound HTTP port (useful with ``port=0``)."""
        if self._server is None:
            raise RuntimeError("the Slack adapter is not serving HTTP")
        return self._server.port

    @property
    def url(self) -> str:
        """The local base URL of the HTTP endpoint, e.g. ``http://127.0.0.1:3000``."""
        host = "127.0.0.1" if self._host in ("0.0.0.0", "") else self._host  # noqa: S104 - comparing, not binding
        return f"http://{host}:{self.port}"

    @property
    def installation_store(self) -> SQLAlchemyInstallationStore | None:
        """bolt's installation store (multi-workspace mode), e.g. for saving an installation in tests or scripts."""
        return self._installation_store

    def start(self, dispatcher: InboundHandler) -> None:
        """Connect to Slack and start receiving events; returns at once (serving runs on background threads).

        Raises:
            AdapterError: Slack rejected the token or Socket Mode could not connect.
        """
        if self._app is not None:
            raise RuntimeError("the Slack adapter is already started")
        self._handler = dispatcher
        self._stopping.clear()
        if self._installation_store is not None and self._state_store is not None:
            self._installation_store.create_tables()
            self._state_store.create_tables()
        else:
            self._verify_token()
        self._executor = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="blendwise-slack")
        try:
            self._app = self._build_app(self._executor)
            if self._app_token:
                self._connect_socket_mode(self._app, self._app_token)
            elif not self.shared_web:
                self._server = WebServer(
                    self._host, self._requested_port, WebApp(self.web_routes(), health={"mode": "http"})
                )
                self._server.start()
                logger.info("Slack endpoint listening on %s%s", self.url, EVENTS_PATH)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop serving, interrupt pacing waits and finish the work already acked. Safe to call twice."""
        self._stopping.set()
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._socket is not None:
            try:
                self._socket.close()
            except Exception:
                logger.exception("Error while closing the Socket Mode connection")
            self._socket = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)  # acked work still runs: Slack will not send it again
            self._executor = None
        self._app = None

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until every inbound request acked so far has been fully handled.

        Exact with one worker (the executor runs work in order, so a no-op submitted now finishes after all of
        it); with several workers it waits for one queued no-op per worker, which trails all work queued before
        it but not work still running on another worker. Tests run with one worker.
        """
        executor = self._executor
        if executor is None:
            return
        futures = [executor.submit(lambda: None) for _ in range(self._workers)]
        for future in futures:
            future.result(timeout=timeout)

    def _verify_token(self) -> None:
        client = self._default_client
        assert client is not None
        response = self._call("auth.test", client.auth_test)
        self.team_id = response.get("team_id")
        self.bot_user_id = response.get("user_id")
        logger.info(
            "Connected to Slack workspace %s (%s) as %s",
            response.get("team"),
            self.team_id,
            response.get("user"),
        )

    def _build_app(self, executor: ThreadPoolExecutor) -> App:
        kwargs: dict[str, Any] = {
            "name": "blendwise",
            "signing_secret": self._signing_secret or "",
            "process_before_response": True,
            "listener_executor": executor,
            "logger": _bolt_logger,
        }
        if self._installation_store is not None:
            kwargs["client"] = self._new_client(None)
            kwargs["oauth_settings"] = OAuthSettings(
                client_id=self._client_id,
                client_secret=self._client_secret,
                scopes=list(BOT_SCOPES),
                installation_store=self._installation_store,
                state_store=self._state_store,
                install_path=INSTALL_PATH,
                redirect_uri_path=REDIRECT_PATH,
                redirect_uri=self._oauth_redirect_uri,
            )
        else:
            kwargs["client"] = self._new_client(self._bot_token)
            kwargs["token_verification_enabled"] = False  # _verify_token already did, with a readable error
        try:
            app = App(**kwargs)
        except BoltError as exc:
            raise AdapterError(f"Slack app setup failed: {exc}", retryable=False) from None
        # Catch-all listeners: every request of these kinds is acked (Slack marks unanswered ones as failures) and
        # the converters decide what is ours.
        app.event(re.compile(".*"))(ack=self._ack, lazy=[self._lazy_event])
        app.action(re.compile(".*"))(ack=self._ack, lazy=[self._lazy_action])
        app.view(re.compile(".*"))(ack=self._ack, lazy=[self._lazy_view])
        app.command(re.compile(".*"))(ack=self._ack, lazy=[self._lazy_command])
        return app

    def _connect_socket_mode(self, app: App, app_token: str) -> None:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        self._socket = SocketModeHandler(app, app_token, concurrency=self._workers)
        try:
            self._socket.connect()
        except SlackApiError as exc:
            raise api_error("apps.connections.open", exc) from None
        except (SlackClientError, URLError, OSError) as exc:
            raise AdapterError(
                f"Slack Socket Mode could not connect: {type(exc).__name__}", retryable=True
            ) from exc
        logger.info("Slack Socket Mode connected")

    # ----------------------------------------------------------------------------------------------------------
    # Web API plumbing

    def _new_client(self, token: str | None, *, posting: bool = False) -> WebClient:
        """A WebClient for ``token``. The ``posting`` client (chat.postMessage) never retries a 5xx or a lost
        connection: Slack may have stored the message before the answer was lost, and a blind re-post would
        duplicate it. The outbox decides instead, after looking for the message (``find_delivery``). A 429 is
        safe to retry: Slack stored nothing."""
        handlers: list[RetryHandler] = [
            BoundedRateLimitRetryHandler(max_retry_count=1, max_wait=self._max_retry_wait),
        ]
        if not posting:
            handlers.insert(0, ConnectionErrorRetryHandler(max_retry_count=1))
            if self._server_error_retries > 0:
                handlers.append(ServerErrorRetryHandler(max_retry_count=self._server_error_retries))
        return WebClient(token=token, base_url=self._api_url, timeout=self._timeout, retry_handlers=handlers)

    def _post_client(self, workspace: str) -> WebClient:
        """The posting client (no blind retries) for ``workspace``."""
        if self._default_post_client is not None:
            return self._default_post_client
        token = self._client(workspace).token or ""
        with self._lock:
            client = self._post_clients.get(token)
            if client is None:
                client = self._post_clients[token] = self._new_client(token, posting=True)
            return client

    def _client(self, workspace: str) -> WebClient:
        """The WebClient holding the bot token for ``workspace``."""
        if self._default_client is not None:
            return self._default_client
        assert self._installation_store is not None
        bot = self._installation_store.find_bot(enterprise_id=None, team_id=workspace or None)
        if bot is None or not bot.bot_token:
            raise AdapterError(
                f"Blendwise is not installed in Slack workspace {workspace!r}", retryable=False
            )
        with self._lock:
            client = self._clients.get(bot.bot_token)
            if client is None:
                client = self._clients[bot.bot_token] = self._new_client(bot.bot_token)
            return client

    def _call(
        self,
        method: str,
        fn: Callable[..., SlackResponse],
        *,
        pace: tuple[str, str] | None = None,
        **kwargs: Any,
    ) -> SlackResponse:
        """Run one Web API call, turning every failure into an AdapterError (never with the token in it)."""
        try:
            return fn(**{k: v for k, v in kwargs.items() if v is not None})
        except SlackApiError as exc:
            err = api_error(method, exc)
            if err.retry_after and pace is not None:
                self._pacer.defer(pace[0], pace[1], err.retry_after)
            raise err from None
        except (SlackClientError, URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            raise SlackCallError(
                method, f"could not reach the Slack API ({reason})", retryable=True
            ) from None

    def _pace(self, workspace: str, channel: str) -> None:
        delay = self._pacer.reserve(workspace, channel)
        if delay > 0 and self._stopping.wait(delay):
            raise AdapterError("the Slack adapter is stopping", retryable=True)

    def _remember_channel(self, channel: str, workspace: str) -> None:
        with self._lock:
            if len(self._channel_workspace) > 100_000:
                self._channel_workspace.clear()
            self._channel_workspace[channel] = workspace

    def _workspace_of_channel(self, channel: str) -> str:
        if self._default_client is not None:
            return self.team_id or ""
        with self._lock:
            workspace = self._channel_workspace.get(channel)
        if workspace is None:
            raise AdapterError(f"no known Slack workspace for channel {channel!r}", retryable=False)
        return workspace

    def _dm_channel(self, client: WebClient, workspace: str, user_id: str) -> str:
        key = (workspace, user_id)
        with self._lock:
            cached = self._dm_channels.get(key)
        if cached is not None:
            return cached
        response = self._call("conversations.open", client.conversations_open, users=user_id)
        channel = str((response.get("channel") or {}).get("id") or "")
        if not channel:
            raise SlackCallError("conversations.open", "no channel in the response", retryable=True)
        with self._lock:
            self._dm_channels[key] = channel
        self._remember_channel(channel, workspace)
        return channel

    # ----------------------------------------------------------------------------------------------------------
    # Outbound: the Adapter protocol

    def send_direct(self, to: Recipient, message: Message) -> MessageRef:
        """DM one person: conversations.open, then chat.postMessage with blocks, fallback text and metadata."""
        client = self._client(to.workspace)
        channel = self._dm_channel(client, to.workspace, to.user_id)
        paid = self._take_prepaid(to.workspace, "@" + to.user_id)
        return self._post(client, to.workspace, channel, message, thread=None, paid=paid)

    def send_channel(
        self, workspace: str, channel: str, message: Message, thread: str | None = None
    ) -> MessageRef:
        """Post to a cohort channel, or into a thread under ``thread`` (a parent message ts)."""
        client = self._client(workspace)
        paid = self._take_prepaid(workspace, channel)
        return self._post(client, workspace, channel, message, thread=thread, paid=paid)

    def reserve(self, to: Recipient | ChannelTarget) -> float:
        """Take the destination's per-channel slot now (0), or say how long until it is free.

        The outbox calls this before each send and serves other destinations while one waits, so pacing never
        blocks unrelated channels. The workspace budget is the outbox's (shared by workers, see
        :attr:`workspace_rate`), so only the channel interval is checked here.
        """
        key, channel = self._pace_key(to)
        wait = self._pacer.try_reserve(to.workspace, channel) if channel is not None else 0.0
        if wait <= 0:
            with self._lock:
                self._prepaid.add((to.workspace, key))
        return wait

    def ready_in(self, to: Recipient | ChannelTarget) -> float:
        """Seconds until :meth:`reserve` would succeed for ``to``, taking nothing."""
        _, channel = self._pace_key(to)
        return self._pacer.channel_wait(to.workspace, channel) if channel is not None else 0.0

    def _pace_key(self, to: Recipient | ChannelTarget) -> tuple[str, str | None]:
        """The prepaid key and the paced channel of a destination (a DM's channel once it is known)."""
        if isinstance(to, Recipient):
            with self._lock:
                return "@" + to.user_id, self._dm_channels.get((to.workspace, to.user_id))
        return to.channel, to.channel

    def _take_prepaid(self, workspace: str, key: str) -> bool:
        with self._lock:
            if (workspace, key) in self._prepaid:
                self._prepaid.discard((workspace, key))
                return True
            return False

    def update(self, ref: MessageRef, message: Message) -> None:
        """Replace a message in place (chat.update). A message too long for one Slack message is shortened."""
        client = self._client(self._workspace_of_channel(ref.channel))
        rendered = render_single(message)
        self._call("chat.update", client.chat_update, channel=ref.channel, ts=ref.ts, **rendered.api_kwargs())

    def default_workspace(self) -> str | None:
        """The team of the configured bot token (``auth.test``); ``None`` in multi-workspace (OAuth) mode, where an
        installation per team exists and only the roster or the operator can say which one is meant."""
        if self._default_client is None:
            return None
        if self.team_id is None:
            response = self._call("auth.test", self._default_client.auth_test)
            self.team_id = response.get("team_id") or None
            if self.team_id is None:
                raise AdapterError("Slack's auth.test named no team for the bot token", retryable=False)
        return self.team_id

    def profile(self, workspace: str, user_id: str) -> Profile | None:
        """Name, IANA time zone and email from users.info; ``None`` for an unknown or hidden user."""
        client = self._client(workspace)
        try:
            response = self._call("users.info", client.users_info, user=user_id)
        except SlackCallError as err:
            if err.error in ("user_not_found", "user_not_visible"):
                return None
            raise
        user = response.get("user") or {}
        details = user.get("profile") or {}
        name = (
            details.get("display_name")
            or details.get("real_name")
            or user.get("real_name")
            or user.get("name")
            or user_id
        )
        return Profile(name=name, tz=user.get("tz") or None, email=details.get("email") or None)

    def find_delivery(
        self, to: Recipient | ChannelTarget, delivery_id: int, part: int = 1
    ) -> MessageRef | None:
        """Search the destination's recent history (a learner's DM, a cohort channel or a thread in it) for part
        ``part`` of ``delivery_id``, by the message metadata every post carries.

        Only a complete part counts: when one part needed several Slack messages, its last page must be there.
        """
        client = self._client(to.workspace)
        if isinstance(to, Recipient):
            channel = self._dm_channel(client, to.workspace, to.user_id)
            thread = None
        else:
            channel, thread = to.channel, to.thread
        if thread:
            response = self._call(
                "conversations.replies",
                client.conversations_replies,
                channel=channel,
                ts=thread,
                limit=self._history_limit,
                include_all_metadata=True,
            )
        else:
            response = self._call(
                "conversations.history",
                client.conversations_history,
                channel=channel,
                limit=self._history_limit,
                include_all_metadata=True,
            )
        for item in response.get("messages") or []:
            metadata = item.get("metadata") or {}
            if metadata.get("event_type") != DELIVERY_EVENT_TYPE:
                continue
            payload = metadata.get("event_payload") or {}
            if str(payload.get("delivery_id")) != str(delivery_id) or payload.get("part", 1) != part:
                continue
            if payload.get("page", 1) != payload.get("pages", 1):
                continue
            return MessageRef(PLATFORM, channel, str(item["ts"]))
        return None

    def publish_home(self, workspace: str, user_id: str) -> None:
        """Refresh someone's App Home (e.g. after their progress changed)."""
        self._publish_home(Actor(PLATFORM, workspace, user_id))

    def _post(
        self,
        client: WebClient,
        workspace: str,
        channel: str,
        message: Message,
        thread: str | None,
        *,
        paid: bool = False,
    ) -> MessageRef:
        parts = render_message(message)
        ref: MessageRef | None = None
        poster = self._post_client(workspace)
        for n, part in enumerate(parts):
            ref = self._post_part(poster, workspace, channel, part, thread, paced=paid and n == 0)
        assert ref is not None
        self._remember_channel(ref.channel, workspace)
        for attachment in message.attachments:
            self._upload(client, workspace, ref.channel, attachment, thread)
        return ref

    def _post_part(
        self,
        client: WebClient,
        workspace: str,
        channel: str,
        part: SlackMessage,
        thread: str | None,
        *,
        paced: bool = False,
    ) -> MessageRef:
        if not paced:
            self._pace(workspace, channel)
        response = self._call(
            "chat.postMessage",
            client.chat_postMessage,
            pace=(workspace, channel),
            channel=channel,
            thread_ts=thread,
            unfurl_links=False,
            unfurl_media=False,
            **part.api_kwargs(),
        )
        return MessageRef(PLATFORM, str(response.get("channel") or channel), str(response["ts"]))

    def _upload(
        self, client: WebClient, workspace: str, channel: str, attachment: Attachment, thread: str | None
    ) -> None:
        # The message is already delivered: a failed upload is logged, not raised, because raising would make the
        # outbox send the whole message again (or, reconciling, mark it delivered without the file anyway).
        data = attachment.data()
        if data is None:  # a chart that could not be drawn (logged where it failed): the message goes without it
            return
        try:
            self._pace(workspace, channel)
            self._call(
                "files.upload_v2",
                client.files_upload_v2,
                pace=(workspace, channel),
                channel=channel,
                file=data,
                filename=attachment.filename,
                title=attachment.title or attachment.filename,
                alt_txt=(attachment.title or attachment.filename)
                if attachment.mimetype.startswith("image/")
                else None,
                thread_ts=thread,
            )
        except AdapterError as err:
            logger.warning(
                "Delivered a message to %s but could not attach %s: %s", channel, attachment.filename, err
            )

    # ----------------------------------------------------------------------------------------------------------
    # Inbound HTTP

    def web_routes(self) -> dict[str, Handler]:
        """The routes this adapter contributes to the HTTP tier (none in Socket Mode)."""
        if self._app_token:
            return {}
        return {path: self._serve_http for path in (EVENTS_PATH, INSTALL_PATH, REDIRECT_PATH)}

    def _serve_http(self, request: HttpRequest) -> HttpResult:
        if request.path == HEALTH_PATH:
            if request.method not in ("GET", "HEAD"):
                return HttpResult(405, b"method not allowed")
            return _json(200, {"ok": True, "mode": "http"})
        if request.path == EVENTS_PATH:
            if request.method != "POST":
                return HttpResult(405, b"method not allowed", headers={"Allow": ["POST"]})
            started = time.perf_counter()
            try:
                return self._serve_events(request)
            finally:
                metrics.acked(PLATFORM, time.perf_counter() - started)
        app = self._app
        if app is not None and app.oauth_flow is not None and request.method == "GET":
            bolt_request = BoltRequest(body="", query=request.query, headers=_bolt_headers(request.headers))
            if request.path == INSTALL_PATH:
                return _from_bolt(app.oauth_flow.handle_installation(bolt_request))
            if request.path == REDIRECT_PATH:
                return _from_bolt(app.oauth_flow.handle_callback(bolt_request))
        return HttpResult(404, b"not found")

    def _serve_events(self, request: HttpRequest) -> HttpResult:
        app, verifier = self._app, self._verifier
        if app is None or verifier is None:
            return HttpResult(503, b"not ready")
        try:
            raw = request.body.decode("utf-8")
        except UnicodeDecodeError:
            return HttpResult(400, b"body is not UTF-8")
        timestamp = request.headers.get("x-slack-request-timestamp", "")
        signature = request.headers.get("x-slack-signature", "")
        # SignatureVerifier also rejects timestamps more than 5 minutes away from now (replayed requests).
        if not (timestamp.isdigit() and signature and verifier.is_valid(raw, timestamp, signature)):
            return _json(401, {"error": "invalid_signature"})
        body = _parse_body(raw, request.headers.get("content-type", ""))
        if body is None:
            return _json(400, {"error": "malformed_payload"})
        problem = convert.problem_with(body)
        if problem is not None:
            logger.info("Rejected a signed but malformed Slack request: %s", problem)
            return _json(400, {"error": "malformed_payload", "detail": problem})
        if body.get("type") == "app_rate_limited":
            logger.warning("Slack is rate-limiting event delivery to this app (team %s)", body.get("team_id"))
            return HttpResult(200)
        # x-slack-bolt-* headers steer bolt's internal lazy-listener re-dispatch; they never come from Slack.
        headers = {k: v for k, v in request.headers.items() if not k.startswith("x-slack-bolt-")}
        retry = headers.get("x-slack-retry-num")
        if retry:
            logger.info(
                "Slack retry #%s (%s) of %s",
                retry,
                headers.get("x-slack-retry-reason", "?"),
                body.get("event_id") or body.get("type"),
            )
        response = app.dispatch(BoltRequest(body=raw, query=request.query, headers=_bolt_headers(headers)))
        return _from_bolt(response)

    # ----------------------------------------------------------------------------------------------------------
    # Inbound listeners (ack first; the lazy part runs on the worker pool after the ack)

    def _ack(self, ack: Callable[[], Any]) -> None:
        ack()

    def _lazy_event(self, body: dict[str, Any]) -> None:
        self._safely("event", lambda: self._on_event(body))

    def _lazy_action(self, body: dict[str, Any]) -> None:
        self._safely("block_actions", lambda: self._on_action(body))

    def _lazy_view(self, body: dict[str, Any]) -> None:
        self._safely("view_submission", lambda: self._on_view(body))

    def _lazy_command(self, body: dict[str, Any]) -> None:
        self._safely("slash command", lambda: self._on_command(body))

    def _safely(self, what: str, work: Callable[[], None]) -> None:
        # After the ack nobody is waiting for an answer: a payload that still breaks something is logged as one
        # line and dropped (its traceback only at DEBUG), so a hostile sender cannot fill the log with tracebacks.
        try:
            work()
        except Exception as exc:
            logger.error("Dropped a Slack %s that could not be handled: %s: %s", what, type(exc).__name__, exc)
            logger.debug("Traceback of the dropped Slack %s", what, exc_info=True)

    def _on_event(self, body: dict[str, Any]) -> None:
        # Slack retries events whose ack it did not see; a retry of an event this process already took is dropped.
        if not self._seen.first_time(convert.event_dedupe_key(body)):
            logger.info("Ignoring a repeated Slack event %s", body.get("event_id"))
            return
        kind = (body.get("event") or {}).get("type")
        shared = files.shared_files(body) if kind == "message" else None
        bare = files.file_shared(body) if kind == "file_shared" else None
        if shared is not None:
            self._on_shared_files(shared)
        elif bare is not None:
            if bare.user_id != self.bot_user_id:
                self._on_file_shared(bare)
        elif kind == "message":
            converted = convert.thread_reply(body)
            if converted is not None:
                self._dispatch(*converted)
        elif kind == "app_home_opened":
            actor = convert.home_opened(body)
            if actor is not None:
                try:
                    self._publish_home(actor)
                except AdapterError as err:  # e.g. a user Slack does not know: nothing to show, nobody waiting
                    logger.warning("Could not publish the Home of %s: %s", actor.user_id, err)

    def _on_file_shared(self, bare: files.FileShared) -> None:
        """A bare ``file_shared`` event: the same path as a message with the file. ``files.info`` names the message
        that shared it (its text is the command, read with ``conversations.history``); keyed by that message's ts,
        the file is attached once whichever of the two events comes first."""
        client = self._client(bare.workspace)
        try:
            info = self._call("files.info", client.files_info, file=bare.file_id).get("file") or {}
            ts = files.share_ts(info, bare.channel)
            text = ""
            if ts is not None:
                history = self._call(
                    "conversations.history", client.conversations_history,
                    channel=bare.channel, latest=ts, inclusive=True, limit=1,
                )  # fmt: skip
                text = next((str(m.get("text") or "") for m in history.get("messages") or [] if m.get("ts") == ts), "")
        except SlackCallError as err:
            logger.warning("Could not read a file %s shared: %s", bare.user_id, err)
            return
        shared = files.SharedFiles(bare.workspace, bare.user_id, bare.channel, text, (bare.file_id,), ts or bare.event_ts)
        self._on_shared_files(shared, info)

    def _on_shared_files(self, shared: files.SharedFiles, info: dict[str, Any] | None = None) -> None:
        """A file shared in a direct message becomes the ``/learn`` command its message names, with the file.

        Slack reports a file shared in a DM twice (the message with the file, and ``file_shared``), so each share
        is claimed once per process before anything is read or said; the core's dedupe key (the same share) keeps
        it once across processes."""
        once = f"slack:share:{shared.workspace}:{shared.channel}:{shared.ts}"
        if not shared.text.strip():
            if self._seen.first_time(f"{once}:hint"):
                self._ephemeral(Message(text=replies.FILE_NEEDS_A_COMMAND), shared.target)
            return
        if not self._seen.first_time(once):
            return
        attached: tuple[tuple[str, bytes], ...] = ()
        try:
            if len(shared.file_ids) > 1:
                raise InvalidInput(replies.SHARE_ONE_FILE)
            if shared.file_ids:
                client = self._client(shared.workspace)
                if info is None:
                    info = self._call("files.info", client.files_info, file=shared.file_ids[0]).get("file") or {}
                name, url = files.check(info)
                attached = ((name, files.download(name, url, client.token or "", self._timeout)),)
        except InvalidInput as refusal:
            self._ephemeral(Message(text=str(refusal)), shared.target)
            return
        except SlackCallError as err:
            logger.warning("Could not read a file %s shared: %s", shared.user_id, err)
            refused = err.error in ("missing_scope", "not_allowed_token_type", "no_permission")
            text = replies.FILE_DOWNLOAD_REFUSED if refused else replies.file_download_failed("the file")
            self._ephemeral(Message(text=text), shared.target)
            return
        self._dispatch(shared.command(attached), shared.target)

    def _on_action(self, body: dict[str, Any]) -> None:
        for event, target in convert.button_pressed(body):
            if self._seen.first_time(event.dedupe_key):
                self._dispatch(event, target)
            else:
                logger.info("Ignoring a repeated Slack action %s", event.dedupe_key)

    def _on_view(self, body: dict[str, Any]) -> None:
        upload = files.recording_submitted(body)
        if upload is not None:
            if self._seen.first_time(f"slack:view:{upload.workspace}:{upload.ts}" if upload.ts else None):
                self._on_shared_files(upload)
            return
        converted = convert.modal_submitted(body)
        if converted is None:
            return
        event, target = converted
        if self._seen.first_time(event.dedupe_key):
            self._dispatch(event, target)

    def _on_command(self, body: dict[str, Any]) -> None:
        converted = convert.command_invoked(body)
        if converted is None:
            return
        trigger = body.get("trigger_id")
        if converted[0].args == "recording" and trigger:
            # Slash commands carry no files: bare ``/learn recording`` opens a form with Slack's file input.
            client = self._client(converted[1].workspace)
            view = files.recording_modal(converted[1].channel)
            self._call("views.open", client.views_open, trigger_id=trigger, view=view)
            # Every command gets a private answer, also when its answer is a form.
            self._ephemeral(Message(text=replies.RECORDING_FORM_OPENED), converted[1])
            return
        if self._seen.first_time(f"slack:command:{trigger}" if trigger else None):
            self._dispatch(*converted)

    def _dispatch(self, event: InboundEvent, target: ReplyTarget) -> None:
        handler = self._handler
        if handler is None:
            return
        if target.workspace and target.channel:
            self._remember_channel(target.channel, target.workspace)
        self._respond(self.answer(handler, event), target)

    # ----------------------------------------------------------------------------------------------------------
    # Rendering a Response

    def _respond(self, response: Response, target: ReplyTarget) -> None:
        steps: list[tuple[str, Callable[[], None]]] = []
        if response.modal is not None:  # first: the trigger_id expires 3 s after the click
            modal = response.modal
            steps.append(("open the modal", lambda: self._open_modal(modal, target)))
        if response.replace is not None:
            replacement = response.replace
            steps.append(("update the message", lambda: self._replace(replacement, target)))
        if response.ephemeral is not None:
            ephemeral = response.ephemeral
            steps.append(("reply", lambda: self._ephemeral(ephemeral, target)))
        if response.public is not None:
            public = response.public
            steps.append(("post publicly", lambda: self._public(public, target)))
        for what, step in steps:
            try:
                step()
            except AdapterError as err:
                logger.warning("Could not %s for %s: %s", what, target.user_id, err)

    def _open_modal(self, modal: Modal, target: ReplyTarget) -> None:
        if not target.trigger_id:
            logger.warning("Cannot open a modal without a trigger_id")
            return
        origin = {k: v for k, v in (("channel", target.channel), ("ts", target.message_ts)) if v}
        client = self._client(target.workspace)
        try:
            self._call(
                "views.open",
                client.views_open,
                trigger_id=target.trigger_id,
                view=render_modal(modal, origin),
            )
        except SlackCallError as err:
            if err.error != "expired_trigger_id":
                raise
            self._ephemeral(Message(text=TRIGGER_EXPIRED, body=TRIGGER_EXPIRED), target)

    def _replace(self, message: Message, target: ReplyTarget) -> None:
        if target.in_view:
            self._publish_home(Actor(PLATFORM, target.workspace, target.user_id))
            return
        rendered = render_single(message)
        if target.channel and target.message_ts and not target.is_ephemeral:
            client = self._client(target.workspace)
            self._call(
                "chat.update",
                client.chat_update,
                channel=target.channel,
                ts=target.message_ts,
                **rendered.api_kwargs(),
            )
        elif target.response_url:
            self._webhook(target.response_url, rendered, replace_original=True)
        else:
            logger.warning("Nowhere to update a message for %s", target.user_id)

    def _ephemeral(self, message: Message, target: ReplyTarget) -> None:
        rendered = render_single(message)
        if target.response_url:
            self._webhook(target.response_url, rendered, response_type="ephemeral", replace_original=False)
            return
        client = self._client(target.workspace)
        if target.channel:
            self._call(
                "chat.postEphemeral",
                client.chat_postEphemeral,
                channel=target.channel,
                user=target.user_id,
                thread_ts=target.thread_ts,
                text=rendered.text,
                blocks=rendered.blocks,
            )
        else:
            # A modal submitted from the Home tab has no channel: the app's DM with the person is the place.
            self._call(
                "chat.postMessage",
                client.chat_postMessage,
                channel=target.user_id,
                text=rendered.text,
                blocks=rendered.blocks,
            )

    def _public(self, message: Message, target: ReplyTarget) -> None:
        if target.response_url:
            self._webhook(target.response_url, render_single(message), response_type="in_channel")
        elif target.channel:
            self._post(
                self._client(target.workspace),
                target.workspace,
                target.channel,
                message,
                thread=target.thread_ts,
            )

    def _webhook(self, url: str, rendered: SlackMessage, **options: Any) -> None:
        try:
            result = WebhookClient(url, timeout=self._timeout).send(
                text=rendered.text, blocks=rendered.blocks, **options
            )
        except (URLError, OSError) as exc:
            raise SlackCallError("response_url", f"unreachable ({type(exc).__name__})") from None
        if result.status_code != 200:
            detail = re.sub(r"[^\w.:-]+", " ", result.body or "")[:120].strip() or "error"
            raise SlackCallError("response_url", detail, status=result.status_code)

    def _publish_home(self, actor: Actor) -> None:
        handler = self._handler
        if handler is None:
            return
        message = self.home_of(handler, actor)
        client = self._client(actor.workspace)
        self._call("views.publish", client.views_publish, user_id=actor.user_id, view=render_home(message))


def _bolt_headers(headers: dict[str, str]) -> dict[str, str | Sequence[str]]:
    return dict(headers)


def _json(status: int, payload: dict[str, Any]) -> HttpResult:
    return HttpResult(status, json.dumps(payload).encode(), content_type="application/json")


def _from_bolt(response: Any) -> HttpResult:
    body = response.body if isinstance(response.body, str) else json.dumps(response.body)
    return HttpResult(
        int(response.status), body.encode("utf-8"), headers={k: list(v) for k, v in response.headers.items()}
    )


def _parse_body(raw: str, content_type: str) -> dict[str, Any] | None:
    """The request body as a dict (JSON events, form-encoded ``payload=`` interactions, form slash commands), or
    ``None`` when it cannot be parsed.

    The body is read as bolt will read it (its ``parse_body``), so what :func:`convert.problem_with` checks is
    exactly what bolt and our listeners get; a strict form parse first refuses what is not a form at all.
    """
    media = content_type.split(";")[0] or None  # bolt's extract_content_type, so both read the body alike
    try:
        if media != "application/json" and not raw.startswith("{"):
            parse_qs(raw, keep_blank_values=True, strict_parsing=bool(raw))
        parsed: Any = bolt_parse_body(raw, media)
    except (ValueError, KeyError, RecursionError):  # RecursionError: JSON nested thousands of levels deep
        return None
    return parsed if isinstance(parsed, dict) and parsed else None


def _check_credentials(
    bot_token: str | None,
    signing_secret: str | None,
    app_token: str | None,
    client_id: str | None,
    client_secret: str | None,
    oauth_engine: Engine | None,
) -> bool:
    """Refuse an incomplete set of credentials naming the setting; returns whether OAuth (multi-workspace) is on."""
    oauth = bool(client_id or client_secret or oauth_engine)
    if oauth and not (client_id and client_secret and oauth_engine is not None):
        raise ConfigError("slack.client_id", "multi-workspace mode needs client_id, client_secret and a database")
    if not oauth and not bot_token:
        raise ConfigError("slack.bot_token", "is required (or configure OAuth for multi-workspace installs)")
    if not app_token and not signing_secret:
        raise ConfigError(
            "slack.signing_secret", "is required in HTTP mode (or set slack.app_token for Socket Mode)"
        )
    return oauth


def _oauth_stores(client_id: str, engine: Engine) -> tuple[SQLAlchemyInstallationStore, SQLAlchemyOAuthStateStore]:
    """The installation and OAuth state stores of multi-workspace mode, in our database."""
    try:
        from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
        from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
    except ImportError as exc:
        # slack_sdk's store imports sqlalchemy.ext.asyncio, which needs greenlet since SQLAlchemy 2.1.
        raise ConfigError(
            "slack.client_id", f"multi-workspace installs need SQLAlchemy's asyncio extra ({exc.name or exc})"
        ) from exc
    return (
        SQLAlchemyInstallationStore(client_id=client_id, engine=engine),
        SQLAlchemyOAuthStateStore(expiration_seconds=600, engine=engine),
    )
