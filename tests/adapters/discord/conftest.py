"""Fixtures for the Discord adapter tests: a fake Discord, a recording handler, and a started adapter.

Every test talks to the real discord.py client through the fake server on 127.0.0.1; nothing reaches Discord.
Waiting is always bounded: the fake and the handler wake waiters when something arrives, with a timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from bot.adapters.discord import DiscordAdapter
from bot.adapters.discord.endpoints import configure_endpoints
from bot.clock import VirtualClock
from bot.events import Actor, InboundEvent, Response
from bot.messages import Message
from bot.ports import Subcommand
from tests.fakes.discord_server import FakeDiscord

E = TypeVar("E")
START = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


CORE_SUBCOMMANDS = ("help", "progress", "next", "snooze", "pause", "resume", "team", "prompt", "announce", "checkin",
                    "roster", "enroll", "cohort", "poll", "recording", "recap", "search")


class RecordingHandler:
    """A stand-in for the core's dispatcher: records every event and answers with ``respond(event)``.

    ``gate``, when set, makes ``handle`` wait for it (bounded), to play a slow dispatcher.
    """

    def __init__(self, respond: Callable[[InboundEvent], Response] | None = None) -> None:
        self.events: list[InboundEvent] = []
        self.respond = respond or (lambda event: Response())
        self.gate: threading.Event | None = None
        self._cond = threading.Condition()

    def handle(self, event: InboundEvent) -> Response:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()
        if self.gate is not None:
            self.gate.wait(10)
        return self.respond(event)

    def home(self, actor: Actor) -> Message:
        return Message(text="home")

    def subcommands(self) -> list[Subcommand]:
        """The core's own ``/learn`` list, as a real dispatcher would give it (features' ones aside)."""
        return [Subcommand(n, f"{n} summary", f"{n} text") for n in CORE_SUBCOMMANDS]

    def of_type(self, kind: type[E]) -> list[E]:
        with self._cond:
            return [e for e in self.events if isinstance(e, kind)]

    def wait_for(self, kind: type[E], count: int = 1, timeout: float = 5.0) -> list[E]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.of_type(kind)) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"expected {count} {kind.__name__}, got {self.events}")
                self._cond.wait(remaining)
            return self.of_type(kind)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``predicate`` with a bounded timeout (for state with no notification of its own)."""
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout}s")
        event.wait(0.01)


@pytest.fixture(autouse=True)
def _restore_endpoints() -> Iterator[None]:
    """The endpoints are process-wide; leave them as Discord's after each test."""
    yield
    configure_endpoints(None, None)


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord(token="fake-token-do-not-log-8f3a") as server:
        yield server


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture
def handler() -> RecordingHandler:
    return RecordingHandler()


@pytest.fixture
def make_adapter(fake: FakeDiscord, clock: VirtualClock) -> Iterator[Callable[..., DiscordAdapter]]:
    """Build (not start) adapters pointed at the fake; every one is stopped at teardown."""
    made: list[DiscordAdapter] = []
    w = fake.world
    fake.now = clock.now  # Discord refuses events in the past: the test's clock says when "now" is

    def make(**overrides: Any) -> DiscordAdapter:
        options: dict[str, Any] = {
            "token": fake.token,
            "guild_ids": [w.guild_id],
            "cohort_channels": {"cohort-a": w.text_channel_id, "cohort-b": w.forum_channel_id},
            "lead_roles": [w.lead_role],
            "admin_roles": [w.admin_role],
            "api_url": fake.api_url,
            "gateway_url": fake.gateway_url,
            "voice_min_minutes": 10,
            "clock": clock,
            "guild_ready_timeout": 0.1,
            "ready_timeout": 15,
            "call_timeout": 15,
            "presence_interval": 3600,
        }
        options.update(overrides)
        adapter = DiscordAdapter(**options)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.stop()


@pytest.fixture
def adapter(make_adapter: Callable[..., DiscordAdapter], handler: RecordingHandler) -> DiscordAdapter:
    started = make_adapter()
    started.start(handler)
    return started
