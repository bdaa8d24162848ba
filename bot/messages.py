"""The platform-neutral outgoing message model.

The core builds :class:`Message` objects; each adapter renders them (Block Kit, Discord embeds + views, plain
terminal text) in one module. Bodies are a small Markdown subset: ``**bold**``, ``_italic_``, ``[text](url)``,
``- lists`` and paragraphs. Adapters escape everything else, so neither authored nor learner text can smuggle
platform syntax (``<!channel>``, ``@everyone``) into a message.

Markdown slots: ``text``, ``body``, ``Field.value`` and ``context``; a name or anything a learner typed enters them
through :func:`bot.markup.inert` (templates do it for every value). Plain-text slots: ``title``, ``Field.label``,
``Button.label`` and the modal's strings; adapters show those as they are.

Buttons carry a stable ``action`` (what to do) and ``value`` (which thing), so a press on a message sent weeks ago
still routes correctly after a restart. A button with a ``url`` is a link (Join): a platform with link buttons opens
the URL; one without sends the action, whose handler answers with the link.

An attachment with a ``source`` can be made again from the database at its current state
(:meth:`bot.ports.InboundHandler.attachment`): a platform that shows attachments as links serves that link statelessly,
from any process, and the file it serves is never stale (a moved session's invite gives the new time).

An attachment's bytes may be drawn lazily (a chart: :attr:`Attachment.draw`), so a file costs nothing where no platform
needs its bytes (the console lists attachments by name; a platform may link to them): adapters read the bytes only through
:meth:`Attachment.data`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

ButtonStyle = Literal["default", "primary", "danger"]


_WEB_URL = re.compile(r"https?://\S+\Z", re.IGNORECASE)


@dataclass(frozen=True)
class Button:
    label: str
    action: str
    value: str = ""
    style: ButtonStyle = "default"
    #: Opens this URL where the platform has link buttons; elsewhere the button sends ``action`` as usual.
    url: str | None = None
    #: The form the button's action answers with (a reflection): a platform that can reveal a form inside the
    #: message shows it in place, with no round trip; elsewhere the button sends ``action`` as usual.
    form: Modal | None = None

    @property
    def action_id(self) -> str:
        """A stable id for platforms that carry one string (Discord custom_id, Slack action_id)."""
        return f"bw:{self.action}:{self.value}"

    @property
    def link(self) -> str | None:
        """``url`` when it is a web address (http or https) that a platform's link button may open, else ``None``."""
        if self.url and _WEB_URL.match(self.url):
            return self.url
        return None


@dataclass(frozen=True)
class Field:
    label: str
    value: str


@dataclass(frozen=True)
class Attachment:
    """A file sent with a message. Adapters read its bytes with :meth:`data`, never ``content`` directly."""

    filename: str
    #: The bytes, when they were made with the message (an ``.ics`` invite); ``b""`` when :attr:`draw` makes them.
    content: bytes
    mimetype: str
    title: str = ""
    #: How the core makes this file again (``session-invite:<enrollment>:<step>``); empty for a one-off file.
    source: str = ""
    #: Makes the bytes on first use, from data gathered when the message was made (a chart's rows), so a file is
    #: drawn only where a platform uploads it. Returns ``None`` when it cannot be drawn (logged where it failed);
    #: the message then goes without the file.
    draw: Callable[[], bytes | None] | None = field(default=None, compare=False, repr=False)

    def data(self) -> bytes | None:
        """The file's bytes: ``content``, or what :attr:`draw` made (drawn once, then kept); ``None`` when the file
        could not be drawn, and the adapter sends the message without it."""
        if self.draw is None:
            return self.content
        try:
            return self.__dict__["_drawn"]
        except KeyError:
            drawn = self.draw()
            # Frozen, but the cache is not part of the value: two threads racing here both draw the same bytes.
            object.__setattr__(self, "_drawn", drawn)
            return drawn


@dataclass(frozen=True)
class Modal:
    """A request to open a form with one free-text input (reflections)."""

    title: str
    label: str
    action: str
    value: str
    placeholder: str = ""
    submit_label: str = "Submit"


@dataclass
class Message:
    """One outgoing message.

    Attributes:
        text: the plain-text fallback (notifications, screen readers, the console).
        title: a heading.
        body: Markdown body; long bodies are split by adapters within their limits.
        fields: short label/value pairs (time, place, due date...).
        buttons: actions the recipient can take.
        attachments: files, e.g. an .ics invite or a PNG chart.
        context: a small footer line.
        delivery_id: the outbox row this message realises; adapters attach it as metadata so an unknown send outcome
            can be reconciled instead of sent twice.
        part: this message's place in a delivery sent as several messages (a long lesson), 1-based; adapters
            carry it (with ``parts``) in the platform metadata, so a resumed delivery can find what already arrived.
        parts: how many messages the delivery has.
        kind: what this message is (lesson, quiz, session, ...), for adapters that style kinds differently.
        opens_thread: a channel post that later posts and replies will thread under (prompts, the weekly-recap
            post). Slack threads exist implicitly; Discord must create one.
        replaces: the outbox edits this message, sent earlier, in place (the adapter's ``update``) instead of
            sending a new one: a moved session's invite. Attachments are not sent with an edit.
        kept_attachments: on an edit (``replaces``, or a ``Response.replace``), the files the original message
            carries and keeps: a platform that uploads files leaves them be; one that shows attachments as links
            inside the message shows these links again, so an edit does not lose them.
    """

    text: str
    title: str = ""
    body: str = ""
    fields: list[Field] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    context: str = ""
    delivery_id: int | None = None
    part: int = 1
    parts: int = 1
    kind: str = "notice"
    opens_thread: bool = False
    replaces: MessageRef | None = None
    kept_attachments: list[Attachment] = field(default_factory=list)

    def revised(self, **changes: Any) -> Message:
        """A shallow copy with ``changes`` applied: what ``dataclasses.replace`` makes, at a third of its cost (it
        runs ``__init__`` again; a lesson in parts for every learner of a cohort made it a twentieth of composing)."""
        if not _MESSAGE_FIELDS.issuperset(changes):
            raise TypeError(f"Message has no field {sorted(set(changes) - _MESSAGE_FIELDS)[0]!r}")
        copied = object.__new__(type(self))
        copied.__dict__.update(self.__dict__, **changes)
        return copied


_MESSAGE_FIELDS = frozenset(Message.__dataclass_fields__)


@dataclass(frozen=True)
class MessageRef:
    """Where a sent message lives on its platform, so it can be updated or threaded on later."""

    platform: str
    channel: str
    ts: str

    def encode(self) -> str:
        return f"{self.platform}|{self.channel}|{self.ts}"

    @classmethod
    def decode(cls, raw: str) -> MessageRef:
        platform, channel, ts = raw.split("|", 2)
        return cls(platform, channel, ts)
