"""A fake Microsoft Teams for tests: the Bot Connector REST API and a token issuer, on localhost.

* **Bot Connector** (``/v3/conversations``): create a channel thread, post an activity to a conversation, update
  one in place, look a member up. Every call must carry the app token the fake issued (``Bearer``), like the real
  connector. Bodies are recorded; :meth:`FakeTeams.rate_limit_next` answers the next posts with 429 and
  ``Retry-After``.
* **Token issuer**: OpenID metadata and a JWKS, and :meth:`FakeTeams.token` signs real RS256 JWTs with a key made
  for this run, as the Bot Framework signs the activities it sends a bot. The adapter's SDK validates them exactly as
  it validates Microsoft's (only the keys' address differs). ``token(key=other)``, ``unsigned_token()``,
  ``token(expires_in=-600)`` and ``token(audience="someone-else")`` make the tokens the SDK must refuse.
* **The Teams client's part**: :meth:`activity` builds the activities Teams would POST to the bot, and
  :meth:`show_card` applies an ``adaptiveCard/action`` invoke's answer to the card the presser sees.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://api.botframework.com"
APP_ID = "00000000-0000-4000-8000-00000000b0b0"
TENANT = "72f988bf-0000-4000-8000-000000000001"
BOT_ID = f"28:{APP_ID}"
CHANNEL = "19:cohort-contract@thread.tacv2"
TEAM = "19:team-contract@thread.tacv2"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Posted:
    """One activity the bot posted, as Teams stores it."""

    conversation: str
    id: str
    activity: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def card(self) -> dict[str, Any] | None:
        for attachment in self.activity.get("attachments") or []:
            if attachment.get("contentType") == "application/vnd.microsoft.card.adaptive":
                return attachment["content"]  # type: ignore[no-any-return]
        return None

    @property
    def channel(self) -> str:
        return self.conversation.split(";", 1)[0]

    @property
    def thread(self) -> str | None:
        _, _, root = self.conversation.partition(";messageid=")
        return root or None


@dataclass
class Call:
    method: str
    path: str
    body: Any
    status: int


class FakeTeams:
    def __init__(self) -> None:
        self.key = new_key()
        self.kid = "fake-key-1"
        self.app_token = f"app-token-{uuid.uuid4().hex}"
        self.posted: list[Posted] = []
        self.calls: list[Call] = []
        self.members: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1_000)
        self._lock = threading.Lock()
        self._limited: list[float] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeTeams:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_get("/.well-known/openid-configuration", self._metadata)
            app.router.add_get("/keys", self._keys)
            app.router.add_post("/v3/conversations", self._create)
            app.router.add_post("/v3/conversations/{cid}/activities", self._post)
            app.router.add_put("/v3/conversations/{cid}/activities/{aid}", self._put)
            app.router.add_get("/v3/conversations/{cid}/members/{mid}", self._member)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            loop.run_forever()

        threading.Thread(target=serve, name="fake-teams", daemon=True).start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        loop, runner = self._loop, self._runner
        if loop is None or runner is None:
            return
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._loop = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def service_url(self) -> str:
        return f"{self.url}/"

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    async def tokens(self) -> str:
        """The adapter's token provider in tests: the app token this connector accepts."""
        return self.app_token

    # ------------------------------------------------------------------ tokens
    def token(
        self, *, audience: str = APP_ID, issuer: str = ISSUER, expires_in: int = 3600,
        key: rsa.RSAPrivateKey | None = None, kid: str | None = None, service_url: str | None = None,
    ) -> str:
        now = int(time.time())
        claims = {"iss": issuer, "aud": audience, "iat": now - 10, "nbf": now - 10, "exp": now + expires_in,
                  "serviceurl": service_url or self.service_url}
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})

    def unsigned_token(self) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": APP_ID, "exp": now + 3600, "serviceurl": self.service_url}
        return jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]

    async def _metadata(self, request: web.Request) -> web.Response:
        return web.json_response({"issuer": ISSUER, "jwks_uri": f"{self.url}/keys",
                                  "id_token_signing_alg_values_supported": ["RS256"]})

    async def _keys(self, request: web.Request) -> web.Response:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return web.json_response({"keys": [jwk]})

    # ------------------------------------------------------------------ the connector
    def rate_limit_next(self, times: int = 1, retry_after: float = 2.0) -> None:
        with self._lock:
            self._limited.extend([retry_after] * times)

    def _refuse(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.app_token}":
            return web.json_response({"error": {"code": "Unauthorized"}}, status=401)
        return None

    def _record(self, request: web.Request, body: Any, status: int) -> None:
        with self._lock:
            self.calls.append(Call(request.method, request.path, body, status))

    def _limited_now(self) -> float | None:
        with self._lock:
            return self._limited.pop(0) if self._limited else None

    def _store(self, conversation: str, activity: dict[str, Any]) -> Posted:
        with self._lock:
            posted = Posted(conversation, str(next(self._ids)), activity)
            self.posted.append(posted)
            return posted

    async def _create(self, request: web.Request) -> web.Response:
        if (refused := self._refuse(request)) is not None:
            return refused
        body = await request.json()
        channel = ((body.get("channelData") or {}).get("channel") or {}).get("id")
        if not body.get("isGroup") or not channel or not isinstance(body.get("activity"), dict):
            self._record(request, body, 400)
            return web.json_response({"error": {"code": "BadArgument"}}, status=400)
        if (after := self._limited_now()) is not None:
            self._record(request, body, 429)
            return web.json_response({"error": {"code": "Throttled"}}, status=429, headers={"Retry-After": f"{after:g}"})
        root = str(next(self._ids))
        with self._lock:
            self.posted.append(Posted(f"{channel};messageid={root}", root, body["activity"]))
        self._record(request, body, 201)
        return web.json_response({"id": f"{channel};messageid={root}", "activityId": root}, status=201)

    async def _post(self, request: web.Request) -> web.Response:
        if (refused := self._refuse(request)) is not None:
            return refused
        body = await request.json()
        if (after := self._limited_now()) is not None:
            self._record(request, body, 429)
            return web.json_response({"error": {"code": "Throttled"}}, status=429, headers={"Retry-After": f"{after:g}"})
        posted = self._store(request.match_info["cid"], body)
        self._record(request, body, 201)
        return web.json_response({"id": posted.id}, status=201)

    async def _put(self, request: web.Request) -> web.Response:
        if (refused := self._refuse(request)) is not None:
            return refused
        body = await request.json()
        found = self.find(request.match_info["aid"])
        if found is None:
            self._record(request, body, 404)
            return web.json_response({"error": {"code": "NotFound"}}, status=404)
        with self._lock:
            found.history.append(found.activity)
            found.activity = body
        self._record(request, body, 200)
        return web.json_response({"id": found.id})

    async def _member(self, request: web.Request) -> web.Response:
        if (refused := self._refuse(request)) is not None:
            return refused
        member = self.members.get(request.match_info["mid"])
        if member is None:
            return web.json_response({"error": {"code": "NotFound"}}, status=404)
        return web.json_response(member)

    # ------------------------------------------------------------------ the client's side
    def find(self, activity_id: str) -> Posted | None:
        with self._lock:
            return next((p for p in self.posted if p.id == activity_id), None)

    def show_card(self, activity_id: str, card: dict[str, Any]) -> None:
        """What the Teams client does with an ``adaptiveCard/action`` answer: the presser sees the new card."""
        found = self.find(activity_id)
        assert found is not None, activity_id
        with self._lock:
            found.history.append(found.activity)
            found.activity = {**found.activity, "attachments": [
                {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]}

    def in_conversation(self, conversation: str) -> list[Posted]:
        with self._lock:
            return [p for p in self.posted if p.conversation == conversation]

    def in_channel(self, channel: str) -> list[Posted]:
        with self._lock:
            return [p for p in self.posted if p.channel == channel and p.conversation != p.channel]

    @staticmethod
    def personal(user: str) -> str:
        return f"a:personal-{user}"

    @staticmethod
    def member_id(user: str) -> str:
        return f"29:member-{user}"

    def add_member(self, user: str, name: str, upn: str | None = None) -> None:
        self.members[self.member_id(user)] = {
            "id": self.member_id(user), "name": name, "aadObjectId": user,
            "userPrincipalName": upn or f"{user.lower()}@contoso.example", "email": upn or f"{user.lower()}@contoso.example",
        }

    def activity(
        self, kind: str, user: str, *, conversation: str | None = None, display: str = "", **extra: Any
    ) -> dict[str, Any]:
        """An activity as Teams would send it from ``user`` (an Entra object id) to the bot."""
        conversation = conversation or self.personal(user)
        personal = conversation.startswith("a:")
        activity: dict[str, Any] = {
            "type": kind,
            "id": f"act-{uuid.uuid4().hex[:12]}",
            "timestamp": "2026-03-02T09:00:00.000Z",
            "serviceUrl": self.service_url,
            "channelId": "msteams",
            "from": {"id": self.member_id(user), "name": display or user, "aadObjectId": user},
            "conversation": {"id": conversation, "conversationType": "personal" if personal else "channel",
                             "tenantId": TENANT},
            "recipient": {"id": BOT_ID, "name": "Blendwise"},
            "channelData": {"tenant": {"id": TENANT}},
        }
        if not personal:
            activity["channelData"].update({"channel": {"id": conversation.split(";", 1)[0]}, "team": {"id": TEAM}})
        activity.update(extra)
        return activity
