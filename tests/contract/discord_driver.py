"""The Discord driver for the contract suite: the fake Discord server plus the real :class:`DiscordAdapter`.

The learner side is played in Discord's wire format: buttons are pressed by dispatching INTERACTION_CREATE over the
fake gateway, forms are modal-submit interactions, thread replies are MESSAGE_CREATE in the thread the bot opened,
and ``/learn`` is an application-command interaction. What a learner sees is read back from the fake's message
store (embeds and ``bw:`` buttons), so in-place edits show as they would in the Discord client.

Discord user ids are snowflakes, so the contract's symbolic people (``UANA``, ``ULEAD``...) are mapped to members
of the fake guild by :meth:`DiscordDriver.uid`; the journey stores and reports the mapped id.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from bot.adapters.discord import DiscordAdapter, build_discord_adapter, configure_endpoints
from bot.clock import Clock
from bot.config import Settings
from bot.events import InboundEvent, Response
from bot.messages import Message
from tests.contract.drivers import Btn, Msg
from tests.fakes.discord_server import DM, FakeDiscord

EPHEMERAL = 1 << 6
LOADING = 1 << 7
#: Interaction callback types that answer later: deferred channel message (5), deferred update (6).
DEFERRED = (5, 6)
WAIT = 10.0


class ObservingHandler:
    """Passes every event to the real dispatcher and counts what was handled, so the driver can wait for work that
    leaves no trace on the platform (a thread reply, an "Interested" RSVP, voice attendance)."""

    def __init__(self, dispatcher: Any) -> None:
        self.dispatcher = dispatcher
        self.handled: list[InboundEvent] = []
        self._cond = threading.Condition()

    def handle(self, event: InboundEvent) -> Response:
        try:
            return self.dispatcher.handle(event)  # type: ignore[no-any-return]
        finally:
            with self._cond:
                self.handled.append(event)
                self._cond.notify_all()

    def home(self, actor: Any) -> Message:
        return self.dispatcher.home(actor)  # type: ignore[no-any-return]

    def subcommands(self) -> Any:
        return self.dispatcher.subcommands()

    def wait_for(
        self, predicate: Callable[[InboundEvent], bool], what: str, timeout: float = WAIT
    ) -> InboundEvent:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((e for e in self.handled if predicate(e)), None)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out waiting for the dispatcher to handle {what}")
                self._cond.wait(remaining)


class DiscordDriver:
    """Fake Discord (REST + gateway) + the real DiscordAdapter built from app settings.

    Args:
        clock: the adapter's clock (voice minutes); ``start`` adopts the dispatcher's clock when none is given.
        **discord: extra keys for the ``discord:`` settings section (e.g. ``voice_min_minutes``).
    """

    platform = "discord"

    def __init__(self, *, clock: Clock | None = None, **discord: Any) -> None:
        self.fake = FakeDiscord()
        self.fake.start()
        w = self.fake.world
        self.world = w
        self.workspace = str(w.guild_id)
        self.channel = str(w.text_channel_id)
        self._ids: dict[str, int] = {"ULEAD": w.lead_id, "UADMIN": w.admin_id}
        self._free = list(w.learner_ids)
        self._modal_openers: dict[str, int] = {}
        self._clock = clock
        #: The ``discord:`` settings section the adapter is built from; reuse it for the runtime's settings.
        self.settings: dict[str, Any] = {
            "token": self.fake.token,
            "guild_ids": [self.workspace],
            "lead_roles": [w.lead_role],
            "admin_roles": [w.admin_role],
            "api_url": self.fake.api_url,
            "gateway_url": self.fake.gateway_url,
            **discord,
        }
        settings = Settings.model_validate({"database_url": "sqlite://", "discord": self.settings})
        self.adapter: DiscordAdapter = build_discord_adapter(settings, clock)
        # discord.py waits this long after READY for further GUILD_CREATEs; the fake sends them all at once.
        self.adapter.guild_ready_timeout = 0.1
        self.observer: ObservingHandler | None = None

    # ------------------------------------------------------------------------------------------- lifecycle
    def start(self, dispatcher: Any) -> None:
        if self._clock is None and getattr(dispatcher, "clock", None) is not None:
            self.adapter.clock = dispatcher.clock
        self.fake.now = self.adapter.clock.now  # "the past" is the test's past, as for Discord
        self.observer = ObservingHandler(dispatcher)
        self.adapter.start(self.observer)

    def stop(self) -> None:
        try:
            self.adapter.stop()
        finally:
            configure_endpoints(None, None)
            self.fake.stop()

    # ------------------------------------------------------------------------------------------- people
    def uid(self, key: str) -> str:
        """The Discord user id standing for the contract's symbolic person ``key`` (a member of the fake guild)."""
        if key not in self._ids:
            if self._free:
                self._ids[key] = self._free.pop(0)
            else:
                new = max(self.fake.users) + 1
                self.fake.add_user(new, key.lower())
                self.fake.add_member(self.fake.world.guild_id, new)
                self._ids[key] = new
        return str(self._ids[key])

    def _int(self, key: str) -> int:
        return int(self.uid(key))

    def add_user(self, user_id: str, name: str, tz: str) -> None:
        # Discord has no per-user time zone; the display name is what the adapter's profile lookup returns.
        self.fake.users[self._int(user_id)]["global_name"] = name

    # ------------------------------------------------------------------------------------------- reading
    @staticmethod
    def message(raw: dict[str, Any]) -> Msg:
        """A Discord message as a person sees it: content, embed title/description/fields/footer, ``bw:`` buttons."""
        title = ""
        texts = [raw.get("content") or ""]
        for embed in raw.get("embeds") or []:
            if embed.get("title"):
                title = title or embed["title"]
                texts.append(embed["title"])
            texts.append(embed.get("description") or "")
            for f in embed.get("fields") or []:
                texts.append(f"{f.get('name', '')}\n{f.get('value', '')}")
            texts.append((embed.get("footer") or {}).get("text") or "")
        buttons = []
        for row in raw.get("components") or []:
            for item in row.get("components") or []:
                custom_id = item.get("custom_id") or ""
                if item.get("type") == 2 and custom_id.startswith("bw:"):
                    _, action, value = custom_id.split(":", 2)
                    buttons.append(Btn(action, value, custom_id))
        return Msg(title, "\n".join(t for t in texts if t), buttons, (raw["channel_id"], raw["id"]))

    @staticmethod
    def _visible(raw: dict[str, Any]) -> bool:
        """Ephemeral interaction replies are not part of a channel's history; a "thinking" placeholder is not text."""
        return not raw.get("flags", 0) & (EPHEMERAL | LOADING)

    def dm_messages(self, user_id: str) -> list[dict[str, Any]]:
        channel = self.fake.dm_channels.get(self._int(user_id))
        if channel is None:
            return []
        return [m for m in self.fake.messages_in(channel) if self._visible(m)]

    def inbox(self, user_id: str) -> list[Msg]:
        return [self.message(m) for m in self.dm_messages(user_id)]

    def channel_messages(self) -> list[dict[str, Any]]:
        """Top-level posts of the cohort channel (thread messages live in the thread's own channel)."""
        return [m for m in self.fake.messages_in(int(self.channel)) if self._visible(m)]

    def channel_posts(self) -> list[Msg]:
        return [self.message(m) for m in self.channel_messages()]

    def raw_channel_texts(self) -> list[str]:
        """Everything a person could read in the cohort channel and its threads (ids and timestamps left out)."""
        channel = int(self.channel)
        threads = [
            cid
            for cid, c in list(self.fake.channels.items())
            if c.get("parent_id") == str(channel) and c.get("type") != DM
        ]
        out = []
        for cid in (channel, *threads):
            out += [self.message(m).text for m in self.fake.messages_in(cid) if self._visible(m)]
        return out

    # ------------------------------------------------------------------------------------------- acting
    def settle(self, interaction_id: int, timeout: float = WAIT) -> dict[str, Any]:
        """Wait (bounded) until the adapter answered the interaction; after a deferral, until its followup or
        edit arrived too. Returns the first callback's body."""
        record = self.fake.interaction(interaction_id)
        first = self.fake.wait_for_ack(interaction_id, timeout=timeout)
        if first.get("type") in DEFERRED:
            self.fake.wait_until(
                lambda: any(
                    record.token in c.path for c in self.fake.calls if c.path.startswith("/webhooks/")
                ),
                timeout=timeout,
                what=f"the answer after deferring interaction {interaction_id}",
            )
        return first

    def press(self, user_id: str, msg: Msg, btn: Btn) -> None:
        interaction = self.fake.press_button(self._int(user_id), int(msg.ref[1]), btn.raw)
        if self.settle(interaction).get("type") == 9:
            self._modal_openers[user_id] = interaction

    def submit_modal(self, user_id: str, text: str) -> None:
        opener = self._modal_openers.pop(user_id)
        self.settle(self.fake.submit_modal(self._int(user_id), opener, text))

    def reply_in_thread(self, user_id: str, post: Msg, text: str) -> None:
        """Post in the thread the bot opened on ``post`` (a thread started from a message has the message's id)."""
        thread_id = int(post.ref[1])
        message_id = str(self.fake.post_message(thread_id, self._int(user_id), text))
        assert self.observer is not None
        self.observer.wait_for(
            lambda e: getattr(e, "message_id", None) == message_id, what=f"the thread reply {message_id}"
        )

    def declared_subcommands(self) -> list[str] | None:
        """The subcommands of ``/learn`` as the adapter synced them to the (fake) Discord."""
        (sync,) = self.fake.calls_to("PUT", rf"/applications/\d+/guilds/{self.world.guild_id}/commands")
        (learn,) = sync.json
        return [option["name"] for option in learn["options"]]

    def calendar_files(self, user_id: str) -> list[bytes]:
        out = []
        for raw in self.dm_messages(user_id):
            for attachment in raw.get("attachments") or []:
                if attachment["filename"].endswith(".ics"):
                    out.append(self.fake.cdn[attachment["url"].split("/cdn/", 1)[1]])
        return out

    def command(self, user_id: str, text: str) -> str:
        """``/learn <subcommand> <text>``; returns the text of the (ephemeral) reply.

        A subcommand the bot never registered is sent as a client with an outdated command list would send it.
        """
        subcommand, _, rest = text.strip().partition(" ")
        options = {"text": rest} if rest else None
        interaction = self.fake.invoke_command(self._int(user_id), "learn", subcommand, options, stale=True)
        self.settle(interaction)
        record = self.fake.interaction(interaction)
        self.fake.wait_until(
            lambda: (
                record.original_message_id is not None
                and not self.fake.messages[record.original_message_id]["flags"] & LOADING
            ),
            timeout=WAIT,
            what=f"the reply to /learn {subcommand}",
        )
        assert record.original_message_id is not None
        return self.message(self.fake.messages[record.original_message_id]).text
