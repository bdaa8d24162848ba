"""Platform-neutral inbound events. Adapters translate platform payloads into these and hand them to the one
:class:`bot.dispatcher.Dispatcher`."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace

from bot.messages import Message, MessageRef, Modal


@dataclass(frozen=True)
class Actor:
    """Who did something: a platform user in a workspace (Slack team id, Discord guild id, or ``console``)."""

    platform: str
    workspace: str
    user_id: str
    name: str = ""
    #: The platform's own role names (Discord roles), as the adapter saw them; for logs and platform features only.
    platform_roles: tuple[str, ...] = ()
    #: Core roles (``lead``, ``admin``) the adapter mapped from the platform's roles with its own settings, so the
    #: core checks roles without knowing any platform.
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class ButtonPressed:
    actor: Actor
    action: str
    value: str
    message: MessageRef | None = None
    dedupe_key: str | None = None


@dataclass(frozen=True)
class ModalSubmitted:
    actor: Actor
    action: str
    value: str
    text: str
    dedupe_key: str | None = None


@dataclass(frozen=True)
class ThreadReply:
    """A message posted in a thread under one of our cohort posts (a prompt's discussion)."""

    actor: Actor
    channel: str
    thread: str
    text: str
    message_id: str


@dataclass(frozen=True)
class CommandInvoked:
    """``/learn <args>``. ``args`` is the raw text after the command; the core parses it."""

    actor: Actor
    args: str
    channel: str = ""
    mentioned_users: tuple[str, ...] = ()
    attachments: tuple[tuple[str, bytes], ...] = ()
    dedupe_key: str | None = None


@dataclass(frozen=True)
class RsvpChanged:
    """A platform-native RSVP (e.g. Discord Scheduled Event "Interested") changed."""

    actor: Actor
    session_ref: str
    going: bool


@dataclass(frozen=True)
class PresenceObserved:
    """Someone was present in a live room (voice/stage) for ``minutes`` during a session."""

    actor: Actor
    session_ref: str
    minutes: float


InboundEvent = ButtonPressed | ModalSubmitted | ThreadReply | CommandInvoked | RsvpChanged | PresenceObserved


@dataclass
class Response:
    """What the dispatcher wants the adapter to do in reply.

    Attributes:
        ephemeral: a message only the actor sees (Slack ephemeral, Discord ephemeral followup, console line).
        replace: new content for the message the button was on (in-place update, e.g. quiz feedback).
        modal: a form to open (reflections).
        public: a message to post where the command was issued (rare; announcements go through the outbox).
    """

    ephemeral: Message | None = None
    replace: Message | None = None
    modal: Modal | None = None
    public: Message | None = None
    extra: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------
# What the core accepts
#
# Adapters validate their platform's payload shapes; these checks are the core's own line, the same for every
# platform, so a value that passed an adapter but would break a database column becomes a polite refusal instead of
# an OverflowError or a DataError with a traceback.

#: Column widths of the tables these values land in (bot/storage/models.py).
ID_LIMITS = {"platform": 20, "workspace": 64, "user_id": 64, "channel": 100, "thread": 100, "message_id": 100}
NAME_LIMIT = 200
DEDUPE_LIMIT = 200
#: Button actions and values are ours (``bw:<action>:<value>``); anything longer was not built by us.
ACTION_LIMIT = 64
VALUE_LIMIT = 200
#: The largest id a database integer column holds (PostgreSQL BIGINT, SQLite INTEGER).
MAX_DB_INT = 2**63 - 1
_DIGITS = re.compile(r"\d+")


class UnfitEvent(ValueError):
    """An inbound event whose ids cannot be ours (too long, a NUL, a lone surrogate, a number no column holds)."""


def _clean_text(text: str) -> str:
    """Free text as a database takes it: no NUL (PostgreSQL refuses it), no lone surrogate (not UTF-8)."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _check_id(what: str, value: str, limit: int) -> None:
    if len(value) > limit or "\x00" in value or _clean_text(value) != value:
        raise UnfitEvent(f"{what} is not an id")


def fit_actor(actor: Actor) -> Actor:
    """``actor`` with its ids checked and its display name cleaned and cut to the column.

    Raises:
        UnfitEvent: an id no platform sends.
    """
    for what in ("platform", "workspace", "user_id"):
        _check_id(what, getattr(actor, what), ID_LIMITS[what])
    for role in actor.roles:
        _check_id("role", role, VALUE_LIMIT)
    return replace(actor, name=_clean_text(actor.name)[:NAME_LIMIT])


def fit(event: InboundEvent) -> InboundEvent:
    """``event`` ready for the core: ids checked, names and free text cleaned and cut to their columns.

    Raises:
        UnfitEvent: an id no platform sends (the dispatcher answers with a polite refusal).
    """
    changes: dict[str, object] = {"actor": fit_actor(event.actor)}
    if isinstance(event, ButtonPressed | ModalSubmitted):
        _check_id("action", event.action, ACTION_LIMIT)
        _check_id("value", event.value, VALUE_LIMIT)
        if any(int(n) > MAX_DB_INT for n in _DIGITS.findall(event.value)):
            raise UnfitEvent("value holds a number no id can be")
    if isinstance(event, ButtonPressed) and event.message is not None:
        _check_id("channel", event.message.channel, ID_LIMITS["channel"])
        _check_id("message", event.message.ts, ID_LIMITS["message_id"])
    if isinstance(event, ModalSubmitted | ThreadReply):
        changes["text"] = _clean_text(event.text)
    if isinstance(event, ThreadReply):
        for what in ("channel", "thread", "message_id"):
            _check_id(what, getattr(event, what), ID_LIMITS[what])
    if isinstance(event, CommandInvoked):
        changes["args"] = _clean_text(event.args)
        _check_id("channel", event.channel, ID_LIMITS["channel"])
        for user_id in event.mentioned_users:
            _check_id("mention", user_id, ID_LIMITS["user_id"])
    if isinstance(event, RsvpChanged | PresenceObserved):
        _check_id("session", event.session_ref, ID_LIMITS["channel"])
    key = getattr(event, "dedupe_key", None)
    if key is not None:
        clean = _clean_text(key)
        if clean != key or len(key) > DEDUPE_LIMIT:
            # A long or odd key (a 255-character Slack action id) still identifies its request: keep its digest.
            changes["dedupe_key"] = "sha256:" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()
    return replace(event, **changes)  # type: ignore[arg-type]
