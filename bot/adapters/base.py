"""The adapter interface: a handful of methods every platform implements.

The contract (tested for every adapter in ``tests/contract/``):

* ``send_direct`` delivers a :class:`~bot.messages.Message` to one person and returns a :class:`MessageRef`.
  It raises :class:`~bot.errors.AdapterError` on failure, with ``retryable`` and ``retry_after`` set so the outbox
  can back off. It never sends the same ``delivery_id`` twice when ``find_delivery`` can see the first one.
* ``send_channel`` posts to a cohort channel, or into a thread when ``thread`` is given.
* ``update`` replaces a message's content in place.
* ``profile`` resolves a user's display name and IANA time zone, or returns ``None``.
* Inbound platform events are translated into :mod:`bot.events` and passed to the dispatcher given to ``start``;
  the dispatcher's :class:`~bot.events.Response` is rendered back (ephemeral reply, in-place update, modal).

Platform-only features (Discord Scheduled Events, Slack App Home) live inside the adapter and hook in through
``on_session_scheduled`` and the dispatcher's read-only queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from bot.events import Actor, InboundEvent, Response
from bot.messages import Message, MessageRef

if TYPE_CHECKING:
    from bot.dispatcher import Dispatcher


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


@runtime_checkable
class Adapter(Protocol):
    platform: str

    def start(self, dispatcher: Dispatcher) -> None: ...

    def stop(self) -> None: ...

    def send_direct(self, to: Recipient, message: Message) -> MessageRef: ...

    def send_channel(self, workspace: str, channel: str, message: Message, thread: str | None = None) -> MessageRef: ...

    def update(self, ref: MessageRef, message: Message) -> None: ...

    def profile(self, workspace: str, user_id: str) -> Profile | None: ...


class AdapterBase:
    """Optional hooks with harmless defaults, so that adapters implement only what their platform offers."""

    platform = "base"
    #: How many sends the outbox may run at once through this adapter (1 keeps the console's transcript ordered).
    max_concurrency = 16
    #: Posts per second allowed across one workspace, shared by every worker; ``None`` means no shared budget.
    workspace_rate: float | None = None

    def find_delivery(
        self, to: Recipient | ChannelTarget, delivery_id: int, part: int = 1
    ) -> MessageRef | None:
        """Look for part ``part`` of ``delivery_id`` on the platform (reconciling an unknown outcome).

        The outbox asks before it re-sends anything whose outcome it does not know (a crash, a lost answer), so an
        adapter that can find its messages never posts one twice. ``None`` means "not there, send it".
        """
        return None

    def reserve(self, to: Recipient | ChannelTarget) -> float:
        """Pacing as a scheduling decision: take a send slot for ``to`` now and return 0, or return how many
        seconds until one is free (taking nothing). The outbox sends to another destination meanwhile."""
        return 0.0

    def on_session_scheduled(self, session: LiveSession) -> str | None:
        """Mirror a live session natively; return the platform's id for it, or ``None``."""
        return None

    def refresh_session(self, session: LiveSession, ref: str) -> None:
        """Called periodically for upcoming mirrored sessions (re-sync native RSVPs, resume presence tracking)."""

    def channel_ready(self, workspace: str, channel: str) -> bool:
        return True

    def default_workspace(self) -> str | None:
        """The workspace a roster row or a new cohort means when it names none, or ``None`` when that is ambiguous.

        People are keyed by (platform, workspace, user id) and inbound events carry the platform's own workspace id
        (a Slack team, a Discord guild), so a person imported without one must be stored under exactly that id or
        the platform's events never find them. Adapters that serve one workspace know it; adapters that serve
        several answer ``None`` and the caller asks for the workspace explicitly. A platform without workspaces
        (the console) uses its own name, which is what its events carry.

        Raises:
            AdapterError: the platform could not be asked (a rejected token, no connection).
        """
        return self.platform


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
