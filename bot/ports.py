"""The ports of the core: what an adapter offers the core, and what the core offers an adapter.

This module belongs to the core and imports neither the dispatcher nor any adapter, so ``bot.journeys`` and
``bot.nudges`` can depend on it without pulling the inbound side (or a platform SDK) along.

The contract of :class:`Adapter` (tested for every adapter in ``tests/contract/``):

* ``send_direct`` delivers a :class:`~bot.messages.Message` to one person and returns a :class:`MessageRef`.
  It raises :class:`~bot.errors.AdapterError` on failure, with ``retryable`` and ``retry_after`` set so the outbox
  can back off. It never sends the same ``delivery_id`` twice when ``find_delivery`` can see the first one.
* ``send_channel`` posts to a cohort channel, or into a thread when ``thread`` is given.
* ``update`` replaces a message's content in place.
* ``profile`` resolves a user's display name and IANA time zone, or returns ``None``.
* Inbound platform events are translated into :mod:`bot.events` and passed to the :class:`InboundHandler` given to
  ``start``; the handler's :class:`~bot.events.Response` is rendered back (ephemeral reply, in-place update, modal).
  :meth:`Adapter.answer` wraps that call with the one shared "log it and apologise" policy.

Platform-only features (Discord Scheduled Events, Slack App Home) live inside the adapter and hook in through
``on_session_scheduled`` / ``on_session_changed`` / ``refresh_session`` and the handler's read-only queries.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.errors import BlendwiseError
from bot.events import Actor, InboundEvent, Response
from bot.messages import Attachment, Message, MessageRef

log = logging.getLogger(__name__)

#: The one apology a person reads when something unexpected breaks; the traceback goes to the log only.
SORRY = "Sorry, something went wrong on our side. It has been logged; please try again in a minute."


@dataclass(frozen=True)
class Recipient:
    """Who a direct message goes to."""

    platform: str
    workspace: str
    user_id: str
    name: str = ""
    tz: str = "UTC"


@dataclass(frozen=True)
class ChannelTarget:
    """Where a channel post goes: a cohort channel, or a thread in it."""

    workspace: str
    channel: str
    thread: str | None = None


@dataclass(frozen=True)
class Profile:
    """What a platform tells us about a user the first time we meet them."""

    name: str
    tz: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class LiveSession:
    """What an adapter needs to mirror a live session natively (e.g. a Discord Guild Scheduled Event)."""

    key: str
    workspace: str
    title: str
    description: str
    start: datetime
    end: datetime
    join_url: str | None
    channel: str | None = None
    #: The session was cancelled: a native twin should be cancelled too.
    cancelled: bool = False
    #: Minutes present that count as attending (the step's ``checkin.min_minutes``); ``None``: the step sets none,
    #: so an adapter that sees presence itself (voice, meeting events) applies its own platform default.
    min_minutes: float | None = None


@dataclass(frozen=True)
class Subcommand:
    """One ``/learn`` subcommand as a platform declares it (Discord wants each one up front).

    Attributes:
        name: what follows ``/learn``.
        summary: one line saying what it does (at most 100 characters).
        arg_help: what to type after the name (at most 100 characters).
        file_help: what file the subcommand takes, if any (at most 100 characters); a platform whose commands
            declare options (Discord) then offers a file option, and the file arrives as the event's attachment.
    """

    name: str
    summary: str
    arg_help: str
    file_help: str = ""


class InboundHandler(Protocol):
    """What adapters call with inbound events: implemented by :class:`bot.dispatcher.Dispatcher`.

    ``handle`` never raises for expected problems: a refusal or bad input comes back as an ephemeral
    :class:`~bot.events.Response`. It may be slow (database work), so adapters ack first and call it after the ack
    where the platform allows.
    """

    def handle(self, event: InboundEvent) -> Response: ...

    def home(self, actor: Actor) -> Message:
        """A platform-neutral summary for the actor's home surface (Slack App Home): programs, progress, next steps,
        upcoming sessions and streak."""
        ...

    def subcommands(self) -> list[Subcommand]:
        """Every ``/learn`` subcommand the core and its features registered, so that each exists on every
        platform (a platform that declares commands up front builds its list from this, never from its own)."""
        ...

    def attachment(self, source: str) -> Attachment | None:
        """The attachment whose :attr:`~bot.messages.Attachment.source` is ``source``, made again from the database
        at its current state (a moved session's invite has the new time), or ``None`` when it names nothing. A
        platform that links to attachments instead of uploading them serves the link with this, from any process;
        ``source`` must come from a link the adapter signed, as it names a learner's own file."""
        ...


def apology() -> Message:
    """The generic reply for an unexpected failure (the details are in the log, never in chat).

    Plain text only: every platform renders a body-less message as a short notice (Discord as message content).
    """
    return Message(text=SORRY)


class Adapter(ABC):
    """The one base class of every platform adapter.

    The six abstract methods are the contract every platform must honour. The hooks below them have harmless
    defaults, so an adapter implements only what its platform offers, yet can never silently lose one: the outbox's
    crash recovery and the session mirroring call them on every adapter (a Protocol joined by ``isinstance`` checks
    used to skip adapters that did not inherit the defaults).
    """

    #: The platform name this adapter serves; it is also the key under ``platforms:`` in app.yaml.
    platform: str = "base"
    #: How many sends the outbox may run at once through this adapter (1 keeps the console's transcript ordered).
    max_concurrency = 16
    #: Posts per second allowed across one workspace, shared by every worker; ``None`` means no shared budget.
    workspace_rate: float | None = None

    @abstractmethod
    def start(self, handler: InboundHandler) -> None:
        """Connect and start delivering inbound events to ``handler``."""

    @abstractmethod
    def stop(self) -> None:
        """Disconnect; idempotent."""

    @abstractmethod
    def send_direct(self, to: Recipient, message: Message) -> MessageRef:
        """Send ``message`` privately to ``to``; raise :class:`~bot.errors.AdapterError` on failure."""

    @abstractmethod
    def send_channel(self, workspace: str, channel: str, message: Message, thread: str | None = None) -> MessageRef:
        """Post ``message`` in ``channel`` (or in ``thread`` under it)."""

    @abstractmethod
    def update(self, ref: MessageRef, message: Message) -> None:
        """Replace the content of a message sent earlier."""

    @abstractmethod
    def profile(self, workspace: str, user_id: str) -> Profile | None:
        """A user's name, time zone and email, or ``None`` when the platform does not know them."""

    # ------------------------------------------------------------------ optional hooks, harmless defaults
    def find_delivery(
        self, to: Recipient | ChannelTarget, delivery_id: int, part: int = 1
    ) -> MessageRef | None:
        """Look for part ``part`` of ``delivery_id`` on the platform (reconciling an unknown outcome).

        The outbox asks before it re-sends anything whose outcome it does not know (a crash, a lost answer), so an
        adapter that can find its messages never posts one twice. ``None`` means "not there, send it": right for
        platforms that cannot search.
        """
        return None

    def reserve(self, to: Recipient | ChannelTarget) -> float:
        """Pacing as a scheduling decision: take a send slot for ``to`` now and return 0, or return how many
        seconds until one is free (taking nothing). The outbox sends to another destination meanwhile."""
        return 0.0

    def ready_in(self, to: Recipient | ChannelTarget) -> float:
        """Seconds until :meth:`reserve` would give ``to`` a slot, taking nothing (0: free now).

        The outbox asks this before it takes a slot of the shared workspace budget, so a slot is never held by a
        destination that must still wait for its own channel (a lesson's next part, a second post to one
        channel): that slot would go unused while other destinations could have sent.
        """
        return 0.0

    def on_session_scheduled(self, session: LiveSession) -> str | None:
        """Mirror a live session natively; return the platform's id for it, or ``None``."""
        return None

    def on_session_changed(self, session: LiveSession, ref: str) -> None:
        """A session mirrored as ``ref`` moved (``session`` has its new times) or was cancelled
        (``session.cancelled``): bring the native twin up to date."""
        return None

    def refresh_session(self, session: LiveSession, ref: str) -> None:
        """Called periodically for upcoming mirrored sessions (re-sync native RSVPs, resume presence tracking)."""
        return None

    def channel_ready(self, workspace: str, channel: str) -> bool:
        """Whether the bot can post in ``channel`` now (e.g. it has been invited)."""
        return True

    def default_workspace(self) -> str | None:
        """The workspace a roster row or a new cohort means when it names none, or ``None`` when that is ambiguous.

        People are keyed by (platform, workspace, user id) and inbound events carry the platform's own workspace id
        (a Slack team, a Discord guild), so a person imported without one must be stored under exactly that id or
        the platform's events never find them. Adapters that serve one workspace know it; adapters that serve
        several answer ``None`` and the caller asks for the workspace explicitly. The default, the platform's own
        name, suits a platform without workspaces (the console), whose events carry that name.

        Raises:
            AdapterError: the platform could not be asked (a rejected token, no connection).
        """
        return self.platform

    # ------------------------------------------------------------------ shared inbound policy
    def answer(self, handler: InboundHandler | None, event: InboundEvent) -> Response:
        """Hand ``event`` to ``handler`` and always come back with something to show.

        Expected problems become their own polite message; anything else is logged with its traceback and the
        person reads :data:`SORRY`. Every adapter goes through here, so no platform shows a traceback.
        """
        if handler is None:
            return Response()
        try:
            return handler.handle(event)
        except BlendwiseError as err:
            return Response(ephemeral=Message(text=str(err)))
        except Exception:
            log.exception("the %s adapter's handler failed on %s", self.platform, type(event).__name__)
            return Response(ephemeral=apology())

    def home_of(self, handler: InboundHandler | None, actor: Actor) -> Message:
        """The actor's home summary, or the apology if building it failed (same policy as :meth:`answer`)."""
        if handler is None:
            return apology()
        try:
            return handler.home(actor)
        except Exception:
            log.exception("the %s adapter's handler failed to build the home of %s", self.platform, actor.user_id)
            return apology()
