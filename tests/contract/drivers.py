"""Platform drivers for the contract suite.

A driver plays the *platform side* of one adapter: it reads what the bot delivered to a user, presses buttons,
submits forms, replies in threads and runs ``/learn``, each in the platform's own wire format (console calls,
signed Slack HTTP requests, Discord gateway dispatches). The journey in ``test_contract.py`` is written once
against this small interface and runs unchanged on every adapter, with the real runtime and database behind it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.adapters.console import ConsoleAdapter, Sent


@dataclass
class Btn:
    action: str
    value: str
    raw: Any = None


@dataclass
class Msg:
    """A delivered message as a learner would see it, reduced to what the journey needs."""

    title: str
    text: str
    buttons: list[Btn] = field(default_factory=list)
    ref: Any = None

    def button(self, action: str) -> Btn | None:
        return next((b for b in self.buttons if b.action == action), None)


class Driver(Protocol):
    platform: str
    workspace: str
    channel: str
    adapter: Any

    def start(self, dispatcher: Any) -> None: ...

    def stop(self) -> None: ...

    def uid(self, key: str) -> str:
        """The platform's user id for the journey's symbolic person ``key`` (``UANA``, ``ULEAD``...): what the
        database stores and the report shows. Driver methods take ``key`` itself."""
        ...

    def add_user(self, user_id: str, name: str, tz: str) -> None: ...

    def inbox(self, user_id: str) -> list[Msg]: ...

    def press(self, user_id: str, msg: Msg, btn: Btn) -> None: ...

    def submit_modal(self, user_id: str, text: str) -> None: ...

    def channel_posts(self) -> list[Msg]: ...

    def reply_in_thread(self, user_id: str, post: Msg, text: str) -> None: ...

    def command(self, user_id: str, text: str) -> str: ...

    def raw_channel_texts(self) -> list[str]: ...

    def declared_subcommands(self) -> list[str] | None:
        """The ``/learn`` subcommands the platform was told about up front, or ``None`` where ``/learn`` takes free
        text (Slack, the console) and every subcommand reaches the core as typed."""
        ...

    def calendar_files(self, user_id: str) -> list[bytes]:
        """The ``.ics`` files the user holds in their direct messages with the bot, oldest first."""
        ...


def wait_until(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Bounded polling for work that happens on another thread (after an ack)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------------------------
class ConsoleDriver:
    platform = "console"
    workspace = "console"
    channel = "cohort-contract"

    def __init__(self) -> None:
        self.adapter = ConsoleAdapter()

    def start(self, dispatcher: Any) -> None:
        self.adapter.start(dispatcher)

    def stop(self) -> None:
        self.adapter.stop()

    def uid(self, key: str) -> str:
        return key

    def add_user(self, user_id: str, name: str, tz: str) -> None:
        from bot.ports import Profile

        self.adapter.profiles[user_id] = Profile(name=name, tz=tz)

    @staticmethod
    def _msg(sent: Sent) -> Msg:
        m = sent.message
        return Msg(
            m.title, f"{m.title}\n{m.body}\n{m.text}", [Btn(b.action, b.value, b) for b in m.buttons], sent
        )

    def inbox(self, user_id: str) -> list[Msg]:
        return [self._msg(s) for s in self.adapter.messages_to(user_id)]

    def press(self, user_id: str, msg: Msg, btn: Btn) -> None:
        self.adapter.press(user_id, msg.ref, btn.raw)

    def submit_modal(self, user_id: str, text: str) -> None:
        self.adapter.submit_modal(user_id, text)

    def channel_posts(self) -> list[Msg]:
        return [self._msg(s) for s in self.adapter.channel_posts(self.channel) if s.thread is None]

    def reply_in_thread(self, user_id: str, post: Msg, text: str) -> None:
        self.adapter.reply_in_thread(user_id, post.ref, text)

    def declared_subcommands(self) -> list[str] | None:
        return None

    def calendar_files(self, user_id: str) -> list[bytes]:
        return [
            a.data() or b""
            for s in self.adapter.messages_to(user_id)
            for a in s.message.attachments
            if a.filename.endswith(".ics")
        ]

    def command(self, user_id: str, text: str) -> str:
        self.adapter.command(user_id, text)
        _, message = self.adapter.ephemerals[-1]
        return f"{message.title}\n{message.body}"

    def raw_channel_texts(self) -> list[str]:
        return [f"{s.message.title}\n{s.message.body}" for s in self.adapter.channel_posts(self.channel)]


# ---------------------------------------------------------------------------------------------------------------
class SlackDriver:
    """Fake Slack Web API + real SlackAdapter (bolt) + real signed HTTP requests to its endpoint."""

    platform = "slack"
    channel = "C0CONTRACT"

    def __init__(self) -> None:
        from tests.fakes.slack_api import FakeSlack

        self.fake = FakeSlack().start()
        self.workspace = self.fake.team_id
        self._modal_meta: dict[str, str] = {}
        from bot.adapters.slack.adapter import SlackAdapter
        from tests.fakes import slack_signing

        self.signing = slack_signing
        self.adapter = SlackAdapter(
            bot_token=self.fake.token,
            signing_secret=slack_signing.SIGNING_SECRET,
            api_url=self.fake.api_url,
            port=0,
            host="127.0.0.1",
            per_channel_interval=0.0,
            workspace_rate=10_000.0,
            workers=1,
        )

    def start(self, dispatcher: Any) -> None:
        self.adapter.start(dispatcher)

    def stop(self) -> None:
        if self.adapter is not None:
            self.adapter.stop()
        self.fake.stop()

    def uid(self, key: str) -> str:
        return key

    def add_user(self, user_id: str, name: str, tz: str) -> None:
        self.fake.add_user(user_id, name, real_name=name, tz=tz)

    @staticmethod
    def _msg(channel: str, raw: dict[str, Any]) -> Msg:
        buttons = []
        texts = [raw.get("text", "")]
        title = ""
        for block in raw.get("blocks") or []:
            if block.get("type") == "header":
                title = block["text"]["text"]
            for part in (block.get("text"), *(block.get("fields") or [])):
                if isinstance(part, dict):
                    texts.append(part.get("text", ""))
            for el in block.get("elements") or []:
                if el.get("type") == "button":
                    action_id = el["action_id"].split("#")[0]
                    _, action, _value = action_id.split(":", 2)
                    buttons.append(Btn(action, el.get("value", ""), (el["action_id"], el.get("value"))))
                elif isinstance(el, dict) and el.get("text"):
                    texts.append(str(el.get("text")))
        return Msg(title, "\n".join(texts), buttons, (channel, raw["ts"]))

    def inbox(self, user_id: str) -> list[Msg]:
        channel = self.fake.dm_channel(user_id)
        return [self._msg(channel or "", m) for m in self.fake.messages_to(user_id)]

    def _post(self, request: Any) -> None:
        result = self.signing.post(f"{self.adapter.url}/slack/events", request)
        assert result.status == 200, result
        self.adapter.wait_idle()

    def press(self, user_id: str, msg: Msg, btn: Btn) -> None:
        channel, ts = msg.ref
        action_id, value = btn.raw
        payload = self.signing.block_actions_payload(
            user_id=user_id,
            action_id=action_id,
            value=value,
            team_id=self.workspace,
            channel_id=channel,
            message_ts=ts,
            response_url=self.fake.response_url(f"r-{user_id}"),
        )
        before = len(self.fake.opened_views())
        self._post(self.signing.interaction_request(self.signing.SIGNING_SECRET, payload))
        views = self.fake.opened_views()
        if len(views) > before:
            self._modal_meta[user_id] = views[-1].get("private_metadata", "")

    def submit_modal(self, user_id: str, text: str) -> None:
        meta = self._modal_meta.pop(user_id)
        payload = self.signing.view_submission_payload(
            user_id=user_id, private_metadata=meta, text=text, team_id=self.workspace
        )
        self._post(self.signing.interaction_request(self.signing.SIGNING_SECRET, payload))

    def channel_posts(self) -> list[Msg]:
        return [
            self._msg(self.channel, m) for m in self.fake.messages_in(self.channel) if not m.get("thread_ts")
        ]

    def reply_in_thread(self, user_id: str, post: Msg, text: str) -> None:
        _, ts = post.ref
        event = self.signing.message_event(user=user_id, channel=self.channel, text=text, thread_ts=ts)
        envelope = self.signing.event_callback(event, team_id=self.workspace)
        self._post(self.signing.event_request(self.signing.SIGNING_SECRET, envelope))

    def declared_subcommands(self) -> list[str] | None:
        return None

    def calendar_files(self, user_id: str) -> list[bytes]:
        channel = self.fake.dm_channel(user_id)
        return [
            u["content"]
            for u in self.fake.uploads()
            if u["channel"] == channel and u["filename"].endswith(".ics") and u["content"] is not None
        ]

    def command(self, user_id: str, text: str) -> str:
        before = len(self.fake.calls())
        form = self.signing.slash_command_form(
            user_id=user_id,
            text=text,
            team_id=self.workspace,
            response_url=self.fake.response_url(f"c-{user_id}"),
        )
        self._post(self.signing.command_request(self.signing.SIGNING_SECRET, form))
        # A reply only the actor sees: an ephemeral message, or a form (bare /learn recording opens one on Slack).
        replies = [
            c
            for c in self.fake.calls()[before:]
            if c.method in ("response_url", "chat.postEphemeral", "views.open")
        ]
        assert replies, "a command always gets an ephemeral reply or a form"
        body = replies[-1].params if hasattr(replies[-1], "params") else {}
        return _flatten(body)

    def raw_channel_texts(self) -> list[str]:
        # What Slack would render: the text fields of the message and its blocks, with their raw mrkdwn syntax
        # (so an unescaped <!channel> would show), but not ids or timestamps.
        return [self._msg(self.channel, m).text for m in self.fake.messages_in(self.channel)]


def _flatten(value: Any) -> str:
    """Every string inside a JSON-ish value, joined: what a person could read, with the platform's raw syntax."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(_flatten(v) for v in value.values())
    if isinstance(value, list | tuple):
        return "\n".join(_flatten(v) for v in value)
    return ""
