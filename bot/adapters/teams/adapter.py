"""The Microsoft Teams adapter, on the Microsoft 365 Agents SDK.

Inbound: ``POST /api/messages`` on the HTTP tier. The SDK validates each activity's bearer token
(:mod:`bot.adapters.teams.auth`); the activity is checked for shape, translated (:mod:`bot.adapters.teams.convert`)
and handed to the core. ``Action.Execute`` presses are ``adaptiveCard/action`` invokes answered with the refreshed
card, so feedback appears in place; installs store the conversation reference (:mod:`.references`).

Outbound: personal messages and channel posts are Adaptive Cards (:mod:`.cards`) posted through the Bot Connector
(:mod:`.connector`), paced by the documented per-conversation limits (:mod:`.pacing`). A learner who has not
installed the app has no conversation yet: the send fails with a reason the outbox records and retries with
back-off (it is never dropped silently), and :meth:`TeamsAdapter.not_installed` lists who is missing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot import metrics
from bot.adapters.teams import cards, convert, files
from bot.adapters.teams.auth import InboundAuth, Unauthorized
from bot.adapters.teams.connector import Connector
from bot.adapters.teams.files import FileLinks, link_key
from bot.adapters.teams.meetings import Meetings, meeting_thread
from bot.adapters.teams.pacing import TENANT_RATE, Windows
from bot.adapters.teams.references import CHANNEL, PERSON, References
from bot.adapters.teams.settings import DEFAULT_SERVICE_URL
from bot.clock import Clock, SystemClock
from bot.errors import AdapterError
from bot.events import ModalSubmitted, Response
from bot.messages import Message, MessageRef
from bot.ports import Adapter, ChannelTarget, InboundHandler, LiveSession, Profile, Recipient
from bot.web import Handler, HttpRequest, HttpResult, WebApp, WebServer

log = logging.getLogger(__name__)
PLATFORM = "teams"
MESSAGES_PATH = "/api/messages"
#: Attachments (calendar invites) are signed links to this path (:mod:`bot.adapters.teams.files`).
FILES_PATH = files.PATH
NOT_INSTALLED = (
    "{user} has not installed the Blendwise app in Teams yet (no conversation reference); install it for them "
    "(Teams admin centre, app setup policy) and the delivery will go out on its next try"
)


def _json(status: int, payload: Any) -> HttpResult:
    return HttpResult(status, json.dumps(payload).encode(), content_type="application/json")


class TeamsAdapter(Adapter):
    """Teams through the Bot Connector.

    Args:
        app_id: the bot's Microsoft App ID (audience of inbound tokens, ``recipient`` of activities).
        auth: validates inbound tokens with the SDK.
        tokens: app tokens for the connector (the SDK's MSAL provider in production).
        factory: sessions on the Blendwise database (conversation references); ``None`` until :meth:`bind`.
        service_url: the connector to use before an activity named the tenant's regional one.
        admins / leads: Entra object ids or UPNs mapped to the core roles ``admin`` / ``lead``.
        meeting_min_minutes: minutes in a meeting that count as attending when the session's step sets no
            ``checkin.min_minutes`` (``LiveSession.min_minutes``).
        link_secret: keys the signatures of file links (the app's client secret, or a dedicated secret); every
            process of one deployment must have the same one. ``None``: a random key, links die with the process.
    """

    platform = PLATFORM
    workspace_rate: float | None = TENANT_RATE

    def __init__(
        self,
        *,
        app_id: str,
        auth: InboundAuth,
        tokens: Callable[[], Awaitable[str]],
        factory: sessionmaker[Session] | None = None,
        service_url: str | None = None,
        tenant_id: str | None = None,
        admins: list[str] | None = None,
        leads: list[str] | None = None,
        meeting_min_minutes: float = 10.0,
        host: str = "127.0.0.1",
        port: int = 3978,
        public_url: str | None = None,
        clock: Clock | None = None,
        link_secret: str | bytes | None = None,
    ) -> None:
        self.app_id = app_id
        self.auth = auth
        self.refs = References(factory)
        self.connector = Connector(tokens)
        self.service_url = service_url
        self.tenant_id = tenant_id
        self._admins = {a.lower() for a in admins or []}
        self._leads = {a.lower() for a in leads or []}
        self.clock = clock or SystemClock()
        self.meetings = Meetings(meeting_min_minutes, self.clock)
        self.windows = Windows()
        self.shared_web = False
        self._host, self._port = host, port
        self._server: WebServer | None = None
        self._handler: InboundHandler | None = None
        #: (delivery id, part) -> where it went, for reconciliation within this process's lifetime.
        self._sent: dict[tuple[int, int], MessageRef] = {}
        self.public_url = public_url
        self.files = FileLinks(link_key(link_secret))
        self._upns: dict[str, str] = {}
        self._zones: dict[str, str] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def bind(self, factory: sessionmaker[Session]) -> None:
        """Use ``factory``'s database for conversation references (a test harness builds the adapter first)."""
        self.refs.bind(factory)

    def start(self, handler: InboundHandler) -> None:
        self._handler = handler
        self.files.remake = handler.attachment
        if self.shared_web and not self.public_url:
            log.warning("teams.public_url is not set: calendar-invite links in cards have no host to open")
        missing = self.not_installed()
        if missing:
            log.warning("%d learners have not installed the app in Teams; their deliveries wait (blendwise teams "
                        "status lists them)", len(missing))
        if not self.shared_web and self._server is None:
            self._server = WebServer(self._host, self._port, WebApp(self.web_routes(), health={"platform": PLATFORM}))
            self._server.start()
            log.info("Teams endpoint listening on %s%s", self.url, MESSAGES_PATH)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        self.connector.close()
        self._handler = None
        self.files.remake = None

    @property
    def url(self) -> str:
        return self._server.url if self._server is not None else ""

    def web_routes(self) -> dict[str, Handler]:
        return {MESSAGES_PATH: self._serve, FILES_PATH: self.files.serve}

    def _card(self, message: Message) -> dict[str, Any]:
        """``message`` as a card whose attachments, sent now or kept from before an edit, are links."""
        base = self.public_url or self.url
        links = [self.files.link(base, a) for a in (*message.attachments, *message.kept_attachments)]
        return cards.render(message, links)

    # ------------------------------------------------------------------ outbound
    def _service_url(self, workspace: str, conversation_id: str | None = None) -> str:
        found = self.refs.service_url_of(conversation_id) if conversation_id else None
        return found or self.service_url or self.refs.any_service_url(workspace) or DEFAULT_SERVICE_URL

    def _activity(self, message: Message) -> dict[str, Any]:
        card = self._card(message)
        return {"type": "message", "summary": message.text[:200], "attachments": [cards.attachment(card)]}

    def _remember(self, message: Message, ref: MessageRef) -> MessageRef:
        if message.delivery_id is not None:
            with self._lock:
                self._sent[(message.delivery_id, message.part)] = ref
        return ref

    def send_direct(self, to: Recipient, message: Message) -> MessageRef:
        address = self.refs.find(to.workspace, PERSON, to.user_id)
        if address is None:
            raise AdapterError(NOT_INSTALLED.format(user=to.name or to.user_id), retryable=True)
        activity_id = self.connector.send(address.service_url, address.conversation_id, self._activity(message))
        return self._remember(message, MessageRef(PLATFORM, address.conversation_id, activity_id))

    def send_channel(self, workspace: str, channel: str, message: Message, thread: str | None = None) -> MessageRef:
        service_url = self._service_url(workspace, channel)
        if thread:
            conversation = f"{channel};messageid={thread}"
            activity_id = self.connector.send(service_url, conversation, self._activity(message))
        else:
            activity_id = self.connector.start_thread(service_url, channel, self._activity(message))
        return self._remember(message, MessageRef(PLATFORM, channel, activity_id))

    def update(self, ref: MessageRef, message: Message) -> None:
        service_url = self._service_url(self.tenant_id or "", ref.channel)
        self.connector.update(service_url, ref.channel, ref.ts, self._activity(message))

    def reserve(self, to: Recipient | ChannelTarget) -> float:
        key = f"{to.workspace}:{to.user_id}" if isinstance(to, Recipient) else f"{to.workspace}:{to.channel}"
        return self.windows.reserve(key)

    def find_delivery(self, to: Recipient | ChannelTarget, delivery_id: int, part: int = 1) -> MessageRef | None:
        """What this process sent. The Bot Connector offers bots no way to read a conversation back, so after a
        restart an unsure delivery is sent again (its card carries ``bw-d<delivery>-p<part>`` to spot it)."""
        with self._lock:
            return self._sent.get((delivery_id, part))

    def default_workspace(self) -> str | None:
        """The tenant of a single-tenant bot; a multi-tenant bot serves several, so the caller must name one."""
        return self.tenant_id

    def profile(self, workspace: str, user_id: str) -> Profile | None:
        address = self.refs.find(workspace, PERSON, user_id)
        if address is None or address.member_id is None:
            return None
        account = self.connector.member(address.service_url, address.conversation_id, address.member_id)
        if not account:
            return None
        upn = account.get("userPrincipalName") or account.get("email")
        if isinstance(upn, str):
            with self._lock:
                self._upns[user_id.lower()] = upn.lower()
        return Profile(name=str(account.get("name") or ""), tz=self._zones.get(user_id), email=upn or None)

    def on_session_scheduled(self, session: LiveSession) -> str | None:
        """A session whose join URL is a Teams meeting is tracked by the meeting's thread id (its attendance then
        comes from participant events); any other session has no Teams twin."""
        thread = meeting_thread(session.join_url)
        if thread is None:
            return None
        self.meetings.track(thread, session)
        return thread

    def on_session_changed(self, session: LiveSession, ref: str) -> None:
        """A moved session's meeting counts minutes inside its new window (at once, not at the next hourly refresh);
        a cancelled one is no longer counted."""
        if session.cancelled:
            self.meetings.forget(ref)
        else:
            self.meetings.track(ref, session)

    def refresh_session(self, session: LiveSession, ref: str) -> None:
        self.meetings.track(ref, session)

    def not_installed(self) -> list[tuple[str, str]]:
        """(tenant, user id) of every enrolled Teams learner without a conversation reference."""
        with self.refs.factory() as session:
            return self.refs.not_installed(session)

    # ------------------------------------------------------------------ inbound
    def _roles(self, activity: dict[str, Any]) -> tuple[str, ...]:
        key = convert.user_key(activity["from"]).lower()
        names = {key, self._upns.get(key, "")} - {""}
        roles = []
        if names & self._admins:
            roles.append("admin")
        if names & self._leads:
            roles.append("lead")
        return tuple(roles)

    def _serve(self, request: HttpRequest) -> HttpResult:
        if request.method != "POST":
            return HttpResult(405, b"method not allowed", headers={"Allow": ["POST"]})
        started = time.perf_counter()
        try:
            try:
                claims = self.connector.loop.run(self.auth.claims(request.headers.get("authorization")))
            except Unauthorized:
                return _json(401, {"error": "unauthorized"})
            try:
                activity = json.loads(request.body)
            except (UnicodeDecodeError, ValueError):
                return _json(400, {"error": "malformed_activity"})
            problem = convert.problem_with(activity)
            if problem is not None:
                log.info("refused a signed but malformed Teams activity: %s", problem)
                return _json(400, {"error": "malformed_activity", "detail": problem})
            # A token is issued for one service: an activity naming another service URL is not the connector's.
            claimed = claims.get("serviceurl")
            if isinstance(claimed, str) and claimed.rstrip("/") != activity["serviceUrl"].rstrip("/"):
                log.warning("refused an activity whose serviceUrl differs from its token's")
                return _json(401, {"error": "unauthorized"})
            return self._route(activity)
        finally:
            metrics.acked(PLATFORM, time.perf_counter() - started)

    def _route(self, activity: dict[str, Any]) -> HttpResult:
        kind = activity["type"]
        self._note_client(activity)
        if kind in ("installationUpdate", "conversationUpdate"):
            self._installed(activity)
            return HttpResult(200)
        if kind == "invoke" and activity.get("name") == convert.CARD_ACTION:
            return self._card_action(activity)
        if kind == "message":
            self._remember_person(activity)
            event = convert.message_event(activity, self._roles(activity), str(activity.get("recipient", {}).get("id", "")))
            if event is not None:
                self._reply(activity, self.answer(self._handler, event))
            return HttpResult(200)
        if kind == "event":
            for event in self.meetings.events(activity):
                self.answer(self._handler, event)
            return HttpResult(200)
        return HttpResult(200)

    def _note_client(self, activity: dict[str, Any]) -> None:
        """Teams names the sender's time zone in a ``clientInfo`` entity: remembered for :meth:`profile`."""
        for entity in activity.get("entities") or []:
            if isinstance(entity, dict) and entity.get("type") == "clientInfo" and isinstance(entity.get("timezone"), str):
                with self._lock:
                    self._zones[convert.user_key(activity["from"])] = entity["timezone"]

    def _installed(self, activity: dict[str, Any]) -> None:
        """Store (or forget) the conversation an install created: personal for a person, the team for a channel."""
        tenant = convert.tenant_of(activity)
        removed = activity.get("action") in ("remove", "remove-upgrade") or any(
            isinstance(m, dict) and m.get("id") == activity.get("recipient", {}).get("id")
            for m in activity.get("membersRemoved") or []
        )
        personal = convert.conversation_type(activity) == "personal"
        kind, key = (PERSON, convert.user_key(activity["from"])) if personal else (CHANNEL, convert.channel_of(activity))
        if removed:
            self.refs.forget(tenant, kind, key)
            return
        reference = {"member_id": activity["from"]["id"], "bot_id": activity.get("recipient", {}).get("id")}
        team = convert.obj(convert.obj(activity.get("channelData")).get("team")).get("id")
        if team:
            reference["team_id"] = team
        conversation = activity["conversation"]["id"] if personal else key
        self.refs.save(tenant, kind, key, conversation, activity["serviceUrl"], self.clock.now(), reference)

    def _remember_person(self, activity: dict[str, Any]) -> None:
        """A person who writes to the bot in a personal chat has that conversation: keep it, install or not."""
        if convert.conversation_type(activity) == "personal":
            tenant, key = convert.tenant_of(activity), convert.user_key(activity["from"])
            if self.refs.find(tenant, PERSON, key) is None:
                self._installed({**activity, "action": "add"})

    def _card_action(self, activity: dict[str, Any]) -> HttpResult:
        event = convert.card_action(activity, self._roles(activity))
        if event is None:
            return _json(200, {"statusCode": 400, "type": "application/vnd.microsoft.error",
                               "value": {"code": "BadRequest", "message": "not a Blendwise action"}})
        response = self.answer(self._handler, event)
        card: dict[str, Any] | None = None
        if response.modal is not None:
            card = cards.form(response.modal)
        elif response.replace is not None:
            card = self._card(response.replace)
            if convert.conversation_type(activity) != "personal" and activity.get("replyToId"):
                # The invoke's answer refreshes the card for the presser only; everyone in a channel sees counts.
                ref = MessageRef(PLATFORM, convert.channel_of(activity), str(activity["replyToId"]))
                replacement = response.replace
                self._quietly(lambda: self.update(ref, replacement))
        elif response.ephemeral is not None and isinstance(event, ModalSubmitted):
            card = cards.render(response.ephemeral)  # the form is answered: it becomes the acknowledgement
            response = Response(public=response.public)
        if response.ephemeral is not None and card is not None:
            self._reply(activity, Response(ephemeral=response.ephemeral))
        if card is not None:
            return _json(200, {"statusCode": 200, "type": cards.CONTENT_TYPE, "value": card})
        text = response.ephemeral.text if response.ephemeral is not None else ""
        return _json(200, {"statusCode": 200, "type": "application/vnd.microsoft.activity.message", "value": text})

    def _reply(self, activity: dict[str, Any], response: Response) -> None:
        """Answer a message or command where only its author reads it: their personal chat (a channel has no
        private replies), else the thread it came from."""
        for message in (response.ephemeral, response.replace, response.public):
            if message is None:
                continue
            tenant, key = convert.tenant_of(activity), convert.user_key(activity["from"])
            address = self.refs.find(tenant, PERSON, key) if message is not response.public else None
            conversation = address.conversation_id if address else activity["conversation"]["id"]
            service_url = address.service_url if address else activity["serviceUrl"]
            self._send_quietly(service_url, conversation, self._activity(message))
        if response.modal is not None:
            tenant, key = convert.tenant_of(activity), convert.user_key(activity["from"])
            address = self.refs.find(tenant, PERSON, key)
            if address is not None:
                form = {"type": "message", "attachments": [cards.attachment(cards.form(response.modal))]}
                self._send_quietly(address.service_url, address.conversation_id, form)

    def _send_quietly(self, service_url: str, conversation: str, activity: dict[str, Any]) -> None:
        self._quietly(lambda: self.connector.send(service_url, conversation, activity))

    @staticmethod
    def _quietly(work: Callable[[], object]) -> None:
        try:
            work()
        except AdapterError as exc:
            log.warning("a Teams reply could not be sent: %s", exc)
