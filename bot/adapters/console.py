"""The console adapter: the demo's platform and the tests' harness.

It keeps every message it "sends" (so tests and the demo can read the conversation), can print them to a terminal,
and lets a caller act as a user: press a button, submit a modal, reply in a thread or run ``/learn``. Those actions
go through the real :class:`~bot.dispatcher.Dispatcher`, exactly as a platform adapter's would.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from pydantic import BaseModel, ConfigDict

from bot.errors import AdapterError
from bot.events import Actor, ButtonPressed, CommandInvoked, ModalSubmitted, Response, ThreadReply
from bot.markup import unescape
from bot.messages import Button, Message, MessageRef, Modal
from bot.platforms import PLATFORMS, PlatformParts, PlatformSpec
from bot.ports import Adapter, ChannelTarget, Profile, Recipient

if TYPE_CHECKING:
    from bot.ports import InboundHandler

WORKSPACE = "console"


@dataclass
class Sent:
    ref: MessageRef
    message: Message
    user_id: str | None = None
    channel: str | None = None
    thread: str | None = None
    history: list[Message] = field(default_factory=list)


class ConsoleAdapter(Adapter):
    platform = "console"
    #: One send at a time: the demo's transcript and the tests read the conversation in order.
    max_concurrency = 1

    def __init__(
        self,
        out: TextIO | None = None,
        *,
        profiles: dict[str, Profile] | None = None,
        workspace: str = WORKSPACE,
    ) -> None:
        self.out = out
        self.workspace = workspace
        self.profiles = profiles or {}
        self.sent: list[Sent] = []
        self.by_ref: dict[str, Sent] = {}
        self.ephemerals: list[tuple[str, Message]] = []
        self.modals: dict[str, Modal] = {}
        self.listeners: list[Callable[[Sent], None]] = []
        self.dispatcher: InboundHandler | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._failures: list[AdapterError] = []

    # ------------------------------------------------------------------ Adapter
    def start(self, dispatcher: InboundHandler) -> None:
        self.dispatcher = dispatcher

    def stop(self) -> None:
        self.dispatcher = None

    def fail_next(self, error: AdapterError, times: int = 1) -> None:
        """Make the next ``times`` sends fail with ``error`` (what a flaky platform does)."""
        self._failures.extend([error] * times)

    def _record(self, message: Message, *, user_id: str | None, channel: str, thread: str | None) -> MessageRef:
        with self._lock:
            if self._failures:
                raise self._failures.pop(0)
            ref = MessageRef(self.platform, channel, f"{next(self._ids):08d}")
            sent = Sent(ref, message, user_id=user_id, channel=channel, thread=thread)
            self.sent.append(sent)
            self.by_ref[ref.encode()] = sent
        self._print(sent)
        for listener in self.listeners:
            listener(sent)
        return ref

    def send_direct(self, to: Recipient, message: Message) -> MessageRef:
        return self._record(message, user_id=to.user_id, channel=f"D-{to.user_id}", thread=None)

    def send_channel(self, workspace: str, channel: str, message: Message, thread: str | None = None) -> MessageRef:
        return self._record(message, user_id=None, channel=channel, thread=thread)

    def update(self, ref: MessageRef, message: Message) -> None:
        sent = self.by_ref.get(ref.encode())
        if sent is None:
            raise AdapterError(f"no console message {ref.encode()}", retryable=False)
        sent.history.append(sent.message)
        sent.message = message

    def default_workspace(self) -> str | None:
        """The workspace the console's actors carry, so imported people are the ones its events name."""
        return self.workspace

    def profile(self, workspace: str, user_id: str) -> Profile | None:
        return self.profiles.get(user_id)

    def find_delivery(
        self, to: Recipient | ChannelTarget | None, delivery_id: int, part: int = 1
    ) -> MessageRef | None:
        for sent in reversed(self.sent):
            if sent.message.delivery_id == delivery_id and sent.message.part == part:
                return sent.ref
        return None

    # ------------------------------------------------------------------ reading the conversation
    def messages_to(self, user_id: str) -> list[Sent]:
        return [s for s in self.sent if s.user_id == user_id]

    def channel_posts(self, channel: str) -> list[Sent]:
        return [s for s in self.sent if s.channel == channel and s.user_id is None]

    def last_with_button(self, user_id: str, action: str) -> tuple[Sent, Button] | None:
        for sent in reversed(self.messages_to(user_id)):
            for button in sent.message.buttons:
                if button.action == action:
                    return sent, button
        return None

    # ------------------------------------------------------------------ acting as a user
    def actor(self, user_id: str, name: str = "", roles: tuple[str, ...] = ()) -> Actor:
        # The console has no platform roles: ``roles`` are core roles (lead, admin), as an adapter maps them.
        return Actor(self.platform, self.workspace, user_id, name, roles=roles)

    def _dispatch(self, event: ButtonPressed | ModalSubmitted | ThreadReply | CommandInvoked) -> Response:
        if self.dispatcher is None:
            raise RuntimeError("console adapter not started")
        return self.answer(self.dispatcher, event)

    def _apply(self, user_id: str, response: Response, sent: Sent | None) -> Response:
        if response.replace is not None and sent is not None:
            self.update(sent.ref, response.replace)
            self._print(sent, updated=True)
        if response.ephemeral is not None:
            self.ephemerals.append((user_id, response.ephemeral))
            shown = unescape(response.ephemeral.body or response.ephemeral.text)
            self._print_line(f"  (only {user_id} sees) {shown}")
        if response.modal is not None:
            self.modals[user_id] = response.modal
        return response

    def press(self, user_id: str, sent: Sent, button: Button, *, dedupe_key: str | None = None) -> Response:
        event = ButtonPressed(self.actor(user_id), button.action, button.value, sent.ref, dedupe_key)
        return self._apply(user_id, self._dispatch(event), sent)

    def submit_modal(self, user_id: str, text: str) -> Response:
        modal = self.modals.pop(user_id, None)
        if modal is None:
            raise RuntimeError(f"no modal open for {user_id}")
        event = ModalSubmitted(self.actor(user_id), modal.action, modal.value, text)
        return self._apply(user_id, self._dispatch(event), None)

    def reply_in_thread(self, user_id: str, post: Sent, text: str) -> Response:
        message_id = f"{next(self._ids):08d}"
        self._record(Message(text=text, body=text), user_id=None, channel=post.ref.channel, thread=post.ref.ts)
        event = ThreadReply(self.actor(user_id), post.ref.channel, post.ref.ts, text, message_id)
        return self._apply(user_id, self._dispatch(event), None)

    def command(self, user_id: str, args: str, *, roles: tuple[str, ...] = (), channel: str = "") -> Response:
        mentioned = tuple(m for m in re.findall(r"@([\w.-]+)", args))
        event = CommandInvoked(self.actor(user_id, roles=roles), args, channel, mentioned)
        return self._apply(user_id, self._dispatch(event), None)

    # ------------------------------------------------------------------ printing
    def _print_line(self, line: str) -> None:
        if self.out is not None:
            self.out.write(line + "\n")

    def _print(self, sent: Sent, *, updated: bool = False) -> None:
        if self.out is None:
            return
        m = sent.message
        where = f"DM {sent.user_id}" if sent.user_id else f"#{sent.channel}" + (" (thread)" if sent.thread else "")
        head = f"[{where}]" + (" (updated)" if updated else "") + (f" {m.title}" if m.title else "")
        lines = [head]
        # A terminal shows Markdown source; escapes that keep names inert are read back to their characters.
        if m.body:
            lines += [f"  {line}" for line in unescape(m.body).splitlines() if line.strip()]
        lines += [f"  {f.label}: {unescape(f.value)}" for f in m.fields]
        if m.buttons:
            lines.append("  " + " ".join(f"[{b.label}]" for b in m.buttons))
        lines += [f"  📎 {a.filename}" for a in m.attachments]
        if m.context:
            lines.append(f"  · {unescape(m.context)}")
        self.out.write("\n".join(lines) + "\n")


class ConsoleSettings(BaseModel):
    """The console needs no settings; the (empty) section exists so every platform is registered the same way."""

    model_config = ConfigDict(extra="forbid")


def _build(section: ConsoleSettings, parts: PlatformParts) -> Adapter:
    return ConsoleAdapter()


SPEC = PLATFORMS.register(
    PlatformSpec(name="console", settings_model=ConsoleSettings, factory=_build, owner=__name__)
)
