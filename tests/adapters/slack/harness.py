"""Test helpers for the Slack adapter: a recording inbound handler (the adapter's collaborator, standing in for the
core's dispatcher) and a harness bundling a started adapter with its fake Slack."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.adapters.slack.adapter import SlackAdapter
from bot.events import Actor, InboundEvent, Response
from bot.messages import Message
from bot.ports import Recipient
from tests.fakes import slack_signing
from tests.fakes.slack_api import FakeSlack

SECRET = slack_signing.SIGNING_SECRET


class RecordingHandler:
    """Records every inbound event and answers with ``respond(event)`` (an empty Response by default)."""

    def __init__(self) -> None:
        self.events: list[InboundEvent] = []
        self.home_actors: list[Actor] = []
        self.respond: Callable[[InboundEvent], Response] = lambda event: Response()
        self.home_message = Message(text="Your learning", title="Your learning", body="Nothing due. *Nice.*")
        self._lock = threading.Lock()

    def handle(self, event: InboundEvent) -> Response:
        with self._lock:
            self.events.append(event)
        return self.respond(event)

    def home(self, actor: Actor) -> Message:
        with self._lock:
            self.home_actors.append(actor)
        return self.home_message

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[InboundEvent]:
        """Poll (bounded) until at least ``count`` events arrived; returns them all."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                events = list(self.events)
            if len(events) >= count:
                return events
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} inbound events within {timeout}s, got {events}")
            time.sleep(0.01)


def make_adapter(fake: FakeSlack, **overrides: Any) -> SlackAdapter:
    options: dict[str, Any] = {
        "bot_token": fake.token,
        "signing_secret": SECRET,
        "api_url": fake.api_url,
        "port": 0,
        "host": "127.0.0.1",
        "per_channel_interval": 0.05,  # tests about pacing set 1.0 themselves
        "workspace_rate": 100.0,
    }
    options.update(overrides)
    return SlackAdapter(**options)


@dataclass
class SlackHarness:
    """A started adapter, its fake Slack and the recording handler, plus helpers to send signed requests.

    The adapter runs with one worker thread, so work after the ack happens in request order: a test can send a
    duplicate, then a marker request, and once the marker was handled the duplicate has certainly been dropped.
    """

    adapter: SlackAdapter
    fake: FakeSlack
    handler: RecordingHandler

    @property
    def events_url(self) -> str:
        return f"{self.adapter.url}/slack/events"

    def recipient(self, user_id: str) -> Recipient:
        return Recipient("slack", self.fake.team_id, user_id)

    def post(
        self, request: slack_signing.SignedRequest, headers: dict[str, str] | None = None
    ) -> slack_signing.HttpResult:
        return slack_signing.post(self.events_url, request, headers=headers)

    def post_event(
        self, envelope: dict[str, Any], headers: dict[str, str] | None = None
    ) -> slack_signing.HttpResult:
        return self.post(slack_signing.event_request(SECRET, envelope), headers)

    def post_interaction(self, payload: dict[str, Any]) -> slack_signing.HttpResult:
        return self.post(slack_signing.interaction_request(SECRET, payload))

    def post_command(self, form: dict[str, str]) -> slack_signing.HttpResult:
        return self.post(slack_signing.command_request(SECRET, form))
