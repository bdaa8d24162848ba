"""The Bot Connector, through the SDK's :class:`ConnectorClient`, from synchronous code.

The SDK's client is asyncio (aiohttp); the outbox's sender and the HTTP tier's handlers are threads. One event loop
runs on a daemon thread for the adapter's lifetime, holds one client per service URL (so connections are reused),
and every call is submitted to it and awaited from the calling thread. Connector failures become
:class:`~bot.errors.AdapterError`: a 429 carries its Retry-After (nothing was stored, the outbox retries that row
only); a 5xx or a lost connection may have reached Teams and is retried after reconciliation; 4xx refusals are final.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import aiohttp
from microsoft_agents.activity import Activity, ConversationParameters
from microsoft_agents.hosting.core.connector.client import ConnectorClient

from bot.errors import AdapterError

log = logging.getLogger(__name__)
T = TypeVar("T")
#: A call that has not answered in this long is treated as a lost connection (it may have reached Teams).
TIMEOUT = 30.0


class Loop:
    """An asyncio loop on a daemon thread; :meth:`run` executes a coroutine there and returns its result."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name="blendwise-teams", daemon=True)
                self._thread.start()
                self._loop = loop
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._ensure()).result(timeout)

    def stop(self, closing: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None:
            return
        if closing is not None:
            try:
                asyncio.run_coroutine_threadsafe(closing(), loop).result(5)
            except Exception:
                log.exception("closing the Teams connector clients failed")
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(5)
        loop.close()


def connector_error(what: str, exc: Exception) -> AdapterError:
    """A connector failure as the outbox understands it."""
    if isinstance(exc, aiohttp.ClientResponseError):
        status = exc.status
        if status == 429:
            retry = exc.headers.get("Retry-After", "") if exc.headers is not None else ""
            try:
                after = max(0.0, float(retry))
            except ValueError:
                after = 1.0
            return AdapterError(f"Teams rate-limited {what} (429, retry after {after:g} s)", retry_after=after)
        if status >= 500:
            return AdapterError(f"Teams failed on {what} ({status})", retryable=True)
        if status == 403:
            return AdapterError(f"Teams refused {what} (403: the app was removed or blocked)", retryable=False)
        if status == 404:
            return AdapterError(f"Teams does not know the conversation of {what} (404)", retryable=False)
        return AdapterError(f"Teams refused {what} ({status})", retryable=False)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | aiohttp.ClientError | OSError):
        return AdapterError(f"no answer from Teams for {what} ({type(exc).__name__})", retryable=True)
    raise exc


class Connector:
    """Bot Connector calls by service URL, on :class:`Loop`, with a fresh app token on each call."""

    def __init__(self, tokens: Callable[[], Awaitable[str]]) -> None:
        self._tokens = tokens
        self._clients: dict[str, ConnectorClient] = {}
        self.loop = Loop()

    async def _client(self, service_url: str) -> ConnectorClient:
        token = await self._tokens()
        client = self._clients.get(service_url)
        if client is None:
            client = ConnectorClient(service_url, token)
            self._clients[service_url] = client
        else:
            client.client.headers["Authorization"] = f"Bearer {token}"
        return client

    def _call(self, what: str, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        try:
            return self.loop.run(work())
        except Exception as exc:
            raise connector_error(what, exc) from None

    def send(self, service_url: str, conversation_id: str, activity: dict[str, Any]) -> str:
        """Post ``activity`` to a conversation; the activity id Teams gave it."""

        async def work() -> str:
            client = await self._client(service_url)
            answer = await client.conversations.send_to_conversation(conversation_id, Activity.model_validate(activity))
            return str(answer.id or "")

        return self._call("a message", work)

    def start_thread(self, service_url: str, channel_id: str, activity: dict[str, Any]) -> str:
        """Post ``activity`` as a new top-level message (a thread root) in a team channel; its activity id."""

        async def work() -> str:
            client = await self._client(service_url)
            params = ConversationParameters.model_validate(
                {"isGroup": True, "channelData": {"channel": {"id": channel_id}}, "activity": activity}
            )
            answer = await client.conversations.create_conversation(params)
            found = answer.activity_id or (answer.id or "").partition(";messageid=")[2]
            return str(found or "")

        return self._call("a channel post", work)

    def update(self, service_url: str, conversation_id: str, activity_id: str, activity: dict[str, Any]) -> None:
        async def work() -> None:
            client = await self._client(service_url)
            body = Activity.model_validate({**activity, "id": activity_id})
            await client.conversations.update_activity(conversation_id, activity_id, body)

        self._call("an update", work)

    def member(self, service_url: str, conversation_id: str, member_id: str) -> dict[str, Any] | None:
        """A conversation member's account (name, email, userPrincipalName), or ``None`` if Teams will not say."""

        async def work() -> dict[str, Any]:
            client = await self._client(service_url)
            account = await client.conversations.get_conversation_member(conversation_id, member_id)
            return account.model_dump(by_alias=True, exclude_none=True)

        try:
            return self._call("a member lookup", work)
        except AdapterError as exc:
            log.info("could not look up a Teams member: %s", exc)
            return None

    def close(self) -> None:
        async def closing() -> None:
            for client in self._clients.values():
                await client.close()
            self._clients.clear()

        self.loop.stop(closing)
