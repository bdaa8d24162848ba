"""Core :class:`~bot.messages.Message` -> Discord embeds, buttons and files.

Discord's limits shape everything here: an embed description holds 4096 characters, all embeds of one message 6000
together, a message 10 embeds; a message has 5 rows of 5 buttons, each ``custom_id`` at most 100 characters and
unique within the message. A body that does not fit one message is split, at paragraph, line or word boundaries,
into several messages; the buttons and files go on the last one, under the text they refer to.

Markdown passes through (Discord renders the core's subset as is, including the backslash escapes that keep person
and learner text inert, see :mod:`bot.markup`); footers and thread names are plain text on Discord, so they show the
unescaped characters. Mentions do not pass: ``@everyone``, ``@here``,
``<@user>``, ``<@!user>`` and ``<@&role>`` get a zero-width space, so neither authored nor learner text can ping
anyone, and every send also carries ``allowed_mentions=AllowedMentions.none()``.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any

import discord

from bot.adapters.discord.ui import ActionButton, ReflectionModal
from bot.errors import AdapterError
from bot.markup import unescape
from bot.messages import Button, Message, Modal

ZWSP = "\u200b"
MAX_CONTENT = 2000
MAX_DESCRIPTION = 4096
MAX_TITLE = 256
MAX_FIELDS = 25
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_FOOTER = 2048
MAX_EMBEDS = 10
MAX_TOTAL = 6000
MAX_BUTTONS = 25
ROW_WIDTH = 5
MAX_CUSTOM_ID = 100
MAX_LABEL = 80
MAX_THREAD_NAME = 100
MAX_MODAL_TITLE = 45
MAX_MODAL_LABEL = 45
MAX_MODAL_PLACEHOLDER = 100

NO_MENTIONS = discord.AllowedMentions.none()

KIND_COLOURS: dict[str, int] = {
    "lesson": 0x5865F2,
    "quiz": 0xFEE75C,
    "session": 0x57F287,
    "prompt": 0xEB459E,
    "reflection": 0x9B59B6,
    "poll": 0x3498DB,
    "digest": 0x95A5A6,
    "reminder": 0xE67E22,
}

_EVERYONE = re.compile(r"@(everyone|here)")
_MENTION = re.compile(r"<@([!&]?\d+)>")


def neutralise(text: str) -> str:
    """Break every mass, user and role mention with a zero-width space; the rest of the Markdown is kept."""
    text = _EVERYONE.sub("@" + ZWSP + r"\1", text)
    return _MENTION.sub("<@" + ZWSP + r"\1>", text)


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def split_text(text: str, limit: int) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters, preferring paragraph, then line, then word
    boundaries, so Markdown spans are rarely cut."""
    chunks: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        cut = -1
        for sep in ("\n\n", "\n", " "):
            cut = rest.rfind(sep, 0, limit + 1)
            if cut > limit // 4:
                break
        if cut <= 0:
            cut = limit
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        chunks.append(rest)
    return chunks


@dataclass
class RenderedPart:
    """One Discord message's worth of a core message."""

    content: str | None = None
    embeds: list[discord.Embed] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)
    files: list[discord.File] = field(default_factory=list)

    def view(self) -> discord.ui.View | None:
        """The buttons as a persistent view (built on demand: discord.py views belong to the running loop)."""
        return build_view(self.buttons) if self.buttons else None

    def send_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Messageable.send`` and ``InteractionResponse.send_message``."""
        kwargs: dict[str, Any] = {"content": self.content, "allowed_mentions": NO_MENTIONS}
        if self.embeds:
            kwargs["embeds"] = self.embeds
        view = self.view()
        if view is not None:
            kwargs["view"] = view
        if self.files:
            kwargs["files"] = self.files
        return kwargs

    def edit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for an in-place edit: every part is replaced, so stale embeds and buttons go."""
        kwargs: dict[str, Any] = {
            "content": self.content,
            "embeds": self.embeds,
            "view": self.view(),
            "allowed_mentions": NO_MENTIONS,
        }
        if self.files:
            kwargs["attachments"] = self.files
        return kwargs


def is_rich(message: Message) -> bool:
    return bool(message.title or message.body or message.fields or message.context)


def check_buttons(buttons: list[Button]) -> None:
    """Refuse what Discord would refuse, naming the offending id, before anything is sent."""
    if len(buttons) > MAX_BUTTONS:
        raise AdapterError(
            f"a Discord message holds at most {MAX_BUTTONS} buttons, got {len(buttons)}", retryable=False
        )
    seen: set[str] = set()
    for button in buttons:
        custom_id = button.action_id
        if ":" in button.action:
            raise AdapterError(f"button action {button.action!r} must not contain ':'", retryable=False)
        if len(custom_id) > MAX_CUSTOM_ID:
            raise AdapterError(
                f"button id {custom_id!r} is longer than Discord's {MAX_CUSTOM_ID} characters",
                retryable=False,
            )
        if custom_id in seen:
            raise AdapterError(f"button id {custom_id!r} appears twice in one message", retryable=False)
        seen.add(custom_id)


def build_view(buttons: list[Button]) -> discord.ui.View:
    check_buttons(buttons)
    view = discord.ui.View(timeout=None)
    for n, button in enumerate(buttons):
        label = truncate(neutralise(button.label), MAX_LABEL) or button.action
        if button.link:  # a link button (Join): Discord opens it; it has no custom_id and sends no interaction
            view.add_item(discord.ui.Button(label=label, url=button.link, row=n // ROW_WIDTH))
        else:
            view.add_item(ActionButton.build(label, button.action_id, button.style, row=n // ROW_WIDTH))
    return view


def build_files(message: Message) -> list[discord.File]:
    """The attachments as files to upload; one that could not be drawn (a chart, logged where it failed) is left
    out, and the message goes without it."""
    files = []
    for a in message.attachments:
        data = a.data()
        if data is not None:
            files.append(discord.File(io.BytesIO(data), filename=a.filename, description=a.title or None))
    return files


def _embeds(message: Message, *, single: bool) -> list[discord.Embed]:
    colour = KIND_COLOURS.get(message.kind)
    title = truncate(neutralise(message.title), MAX_TITLE) if message.title else None
    body = neutralise(message.body or message.text)
    footer = truncate(neutralise(unescape(message.context)), MAX_FOOTER) if message.context else ""
    fields = [
        (
            truncate(neutralise(f.label), MAX_FIELD_NAME) or "-",
            truncate(neutralise(f.value), MAX_FIELD_VALUE) or "-",
        )
        for f in message.fields
    ]
    if single:
        fields = fields[:MAX_FIELDS]
        room = MAX_TOTAL - len(title or "") - len(footer) - sum(len(n) + len(v) for n, v in fields)
        chunks = [truncate(body, max(1, min(MAX_DESCRIPTION, room)))] if body else []
    else:
        chunks = split_text(body, MAX_DESCRIPTION) if body else []

    embeds: list[discord.Embed] = []
    for n, chunk in enumerate(chunks or [""]):
        embed = discord.Embed(title=title if n == 0 else None, description=chunk or None, colour=colour)
        embeds.append(embed)
    last = embeds[-1]
    for name, value in fields:
        if len(last.fields) >= MAX_FIELDS or len(last) + len(name) + len(value) > MAX_TOTAL:
            last = discord.Embed(colour=colour)
            embeds.append(last)
        last.add_field(name=name, value=value, inline=len(value) <= 40)
    if footer:
        if len(last) + len(footer) > MAX_TOTAL:
            last = discord.Embed(colour=colour)
            embeds.append(last)
        last.set_footer(text=footer)
    return embeds


def render(message: Message) -> list[RenderedPart]:
    """Render a core message as one or more Discord messages (most messages: exactly one)."""
    check_buttons(message.buttons)
    if not is_rich(message):
        texts = split_text(neutralise(message.text), MAX_CONTENT) or [ZWSP]
        parts = [RenderedPart(content=t) for t in texts]
    else:
        parts = []
        current = RenderedPart()
        for embed in _embeds(message, single=False):
            size = sum(len(e) for e in current.embeds)
            if current.embeds and (len(current.embeds) >= MAX_EMBEDS or size + len(embed) > MAX_TOTAL):
                parts.append(current)
                current = RenderedPart()
            current.embeds.append(embed)
        parts.append(current)
    parts[-1].buttons = list(message.buttons)
    parts[-1].files = build_files(message)
    return parts


def render_single(message: Message) -> RenderedPart:
    """Render into exactly one Discord message (in-place edits, interaction replies), shortening the body if it
    has to: an edit cannot grow into several messages."""
    check_buttons(message.buttons)
    if not is_rich(message):
        part = RenderedPart(content=truncate(neutralise(message.text), MAX_CONTENT) or ZWSP)
    else:
        embeds = _embeds(message, single=True)[:MAX_EMBEDS]
        part = RenderedPart(embeds=embeds)
    part.buttons = list(message.buttons)
    part.files = build_files(message)
    return part


def thread_name(message: Message) -> str:
    """A thread or forum post title: the message title, else the start of its text."""
    name = (message.title or unescape(message.text) or "Discussion").splitlines()[0].strip()
    return truncate(name, MAX_THREAD_NAME) or "Discussion"


def build_modal(modal: Modal) -> ReflectionModal:
    """The core's :class:`Modal` as a Discord modal, within Discord's limits. Its ``custom_id`` is the same
    ``bw:<action>:<value>`` as a button's, so the submission routes without any state."""
    return ReflectionModal(
        title=truncate(modal.title, MAX_MODAL_TITLE) or "Reflection",
        label=truncate(modal.label, MAX_MODAL_LABEL) or "Your answer",
        placeholder=truncate(modal.placeholder, MAX_MODAL_PLACEHOLDER),
        custom_id=Button(label="", action=modal.action, value=modal.value).action_id,
    )
