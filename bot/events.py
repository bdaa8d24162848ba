"""Platform-neutral inbound events. Adapters translate platform payloads into these and hand them to the one
:class:`bot.dispatcher.Dispatcher`."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.messages import Message, MessageRef, Modal


@dataclass(frozen=True)
class Actor:
    """Who did something: a platform user in a workspace (Slack team id, Discord guild id, or ``console``)."""

    platform: str
    workspace: str
    user_id: str
    name: str = ""
    platform_roles: tuple[str, ...] = ()


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
