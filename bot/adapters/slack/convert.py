"""Slack payloads -> :mod:`bot.events`.

The raw shapes are typed with TypedDicts (``total=False``: Slack omits keys freely, and a signed request can
still be malformed). Converters return ``None`` for anything that is not ours to handle (a foreign action id, a
bot's own message, an edit) instead of raising, and :func:`problem_with` rejects payloads that are too broken to
route before they reach bolt, so a bad request gets a 400 and never a 500.

Each converter also returns a :class:`ReplyTarget`: where the dispatcher's :class:`~bot.events.Response` goes
(the response_url, the pressed message, the trigger for a modal).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, TypedDict, cast

from bot.adapters.slack.render import (
    ACTION_PREFIX,
    MODAL_BLOCK_ID,
    MODAL_CALLBACK_ID,
    MODAL_INPUT_ACTION_ID,
    slack_text_to_plain,
)
from bot.events import Actor, ButtonPressed, CommandInvoked, ModalSubmitted, ThreadReply
from bot.messages import MessageRef

PLATFORM = "slack"


# --------------------------------------------------------------------------------------------------------------
# Raw payloads (the parts we read)


class SlackUser(TypedDict, total=False):
    id: str
    username: str
    name: str
    team_id: str


class SlackTeam(TypedDict, total=False):
    id: str
    domain: str


class SlackChannel(TypedDict, total=False):
    id: str
    name: str


class SlackContainer(TypedDict, total=False):
    type: str  # "message", "view", "message_attachment"
    message_ts: str
    channel_id: str
    is_ephemeral: bool
    view_id: str
    thread_ts: str


class SlackAction(TypedDict, total=False):
    type: str
    action_id: str
    block_id: str
    value: str
    action_ts: str


class SlackBlockActions(TypedDict, total=False):
    type: str  # "block_actions"
    user: SlackUser
    team: SlackTeam | None
    channel: SlackChannel
    container: SlackContainer
    message: dict[str, Any]
    trigger_id: str
    response_url: str
    actions: list[SlackAction]
    view: dict[str, Any]


class SlackInputValue(TypedDict, total=False):
    type: str
    value: str | None


class SlackViewState(TypedDict, total=False):
    values: dict[str, dict[str, SlackInputValue]]


class SlackView(TypedDict, total=False):
    id: str
    type: str
    team_id: str
    callback_id: str
    private_metadata: str
    hash: str
    state: SlackViewState


class SlackViewSubmission(TypedDict, total=False):
    type: str  # "view_submission"
    user: SlackUser
    team: SlackTeam | None
    trigger_id: str
    view: SlackView


class SlackMessageEvent(TypedDict, total=False):
    type: str  # "message"
    subtype: str
    channel: str
    channel_type: str
    user: str
    bot_id: str
    text: str
    ts: str
    thread_ts: str
    team: str


class SlackAppHomeOpened(TypedDict, total=False):
    type: str  # "app_home_opened"
    user: str
    channel: str
    tab: str


class SlackEventCallback(TypedDict, total=False):
    type: str  # "event_callback"
    team_id: str
    api_app_id: str
    event_id: str
    event_time: int
    event: dict[str, Any]


class SlackSlashCommand(TypedDict, total=False):
    command: str
    text: str
    team_id: str
    enterprise_id: str
    channel_id: str
    user_id: str
    user_name: str
    response_url: str
    trigger_id: str


# --------------------------------------------------------------------------------------------------------------
# Where replies go


@dataclass(frozen=True)
class ReplyTarget:
    """Where to render the dispatcher's response for one inbound request."""

    workspace: str
    user_id: str
    channel: str | None = None
    message_ts: str | None = None
    thread_ts: str | None = None
    response_url: str | None = None
    trigger_id: str | None = None
    is_ephemeral: bool = False
    in_view: bool = False


# --------------------------------------------------------------------------------------------------------------
# Validation before bolt


def _is_str(value: object) -> bool:
    return isinstance(value, str) and bool(value)


#: Slack's payloads nest a dozen levels at most (blocks in a message in a view); deeper is not Slack.
MAX_DEPTH = 48
#: Larger than any id, timestamp or count Slack sends; a bigger number only ever overflows a database column.
MAX_INT = 2**53
_NONE = type(None)
#: The type each key must have wherever it appears. Bolt reads these keys at any depth while it builds its context
#: (``extract_team_id`` and friends recurse into ``event``, ``authorizations``, ``message``...) and our converters
#: read them after the ack, so one wrong type anywhere is a 500 or a traceback unless it is refused here.
KEY_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("team", "enterprise"), (dict, str, _NONE)),
    **dict.fromkeys(("user", "channel"), (dict, str)),
    **dict.fromkeys(
        (
            "container",
            "view",
            "message",
            "previous_message",
            "item",
            "event",
            "function_data",
            "state",
            "assistant_thread",
        ),
        (dict, _NONE),
    ),
    **dict.fromkeys(("authorizations", "actions", "response_urls"), (list,)),
    # Slash command forms carry flags as the strings "true"/"false".
    **dict.fromkeys(
        ("is_enterprise_install", "is_ext_shared_channel", "is_ephemeral", "is_bot"), (bool, str, _NONE)
    ),
    **dict.fromkeys(
        (
            "id",
            "type",
            "subtype",
            "team_id",
            "enterprise_id",
            "user_id",
            "channel_id",
            "bot_id",
            "ts",
            "thread_ts",
            "message_ts",
            "event_ts",
            "action_ts",
            "event_id",
            "action_id",
            "block_id",
            "callback_id",
            "trigger_id",
            "response_url",
            "private_metadata",
            "api_app_id",
            "token",
            "command",
            "channel_type",
            "tab",
            "view_id",
            "user_team",
            "app_installed_team_id",
            "function_execution_id",
            "bot_access_token",
            "username",
            "name",
            "domain",
        ),
        (str, _NONE),
    ),
    "value": (str, _NONE),
}


#: Payload types bolt answers itself (the retry throttle notice) beside those problem_with checks.
_OTHER_KINDS = frozenset({"app_rate_limited"})
_LISTS_OF_OBJECTS = frozenset({"authorizations", "actions", "response_urls"})
_HTTP_URL = re.compile(r"^https?://[^\s]+$")


def _bad_value(value: object) -> str | None:
    if isinstance(value, str):
        if "\x00" in value:
            return "a string holds a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "a string holds a lone surrogate"
    elif isinstance(value, bool):
        return None
    elif isinstance(value, int):
        if abs(value) > MAX_INT:
            return "a number is out of range"
    elif isinstance(value, float) and not math.isfinite(value):
        return "a number is not finite"
    return None


def shape_problem(body: object) -> str | None:
    """Walk the whole body once (iteratively: a deep body must not exhaust the stack) and name the first thing
    that is not Slack's shape: nesting too deep, a key of the wrong type, a string no database column takes."""
    stack: list[tuple[object, int]] = [(body, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return "payload is nested too deeply"
        if isinstance(node, dict):
            for key, value in node.items():
                expected = KEY_TYPES.get(key)
                if expected is not None and not isinstance(value, expected):
                    return f"'{key}' has the wrong type ({type(value).__name__})"
                if key in _LISTS_OF_OBJECTS and not all(isinstance(item, dict) for item in value):
                    return f"'{key}' holds something that is not an object"
                if key == "response_url" and isinstance(value, str) and not _HTTP_URL.match(value):
                    return "'response_url' is not an http(s) URL"
                if isinstance(value, dict | list):
                    stack.append((value, depth + 1))
                elif (problem := _bad_value(value)) is not None:
                    return problem
                if (problem := _bad_value(key)) is not None:
                    return problem
        elif isinstance(node, list):
            for value in node:
                if isinstance(value, dict | list):
                    stack.append((value, depth + 1))
                elif (problem := _bad_value(value)) is not None:
                    return problem
    return None


def problem_with(body: dict[str, Any]) -> str | None:
    """What makes a parsed request body unroutable, or ``None`` if it is fine.

    The adapter answers a problem with a 400 and one log line, before bolt sees the body: bolt indexes many keys
    without checking them (``body["view"]["type"]``, ``body["workflow_step"]``), so only the payload kinds
    Blendwise handles, in Slack's shape, go through.
    """
    shape = shape_problem(body)
    if shape is not None:
        return shape
    kind = body.get("type")
    if "command" in body and kind is None:
        if not (_is_str(body.get("command")) and str(body["command"]).startswith("/")):
            return "slash command without a command name"
        if not _is_str(body.get("user_id")) or not _is_str(body.get("team_id") or body.get("enterprise_id")):
            return "slash command without user_id/team_id"
        for key in ("text", "user_name", "channel_name"):
            if not isinstance(body.get(key), str | _NONE):
                return f"slash command whose {key} is not text"
        return None
    if "ssl_check" in body:
        return None
    if not isinstance(kind, str):
        return "payload has no type"
    if kind == "url_verification":
        return None if _is_str(body.get("challenge")) else "url_verification without challenge"
    if kind == "event_callback":
        event = body.get("event")
        if not isinstance(event, dict) or not _is_str(event.get("type")):
            return "event_callback without an event"
        if not _is_str(body.get("event_id")):
            return "event_callback without event_id"
        if not _is_str(body.get("team_id")) and not isinstance(body.get("authorizations"), list):
            return "event_callback without team_id"
        if not all(isinstance(a, dict) for a in body.get("authorizations") or []):
            return "event_callback with an authorization that is not an object"
        if event["type"] in ("message", "app_home_opened"):
            # The two events we read: a person and a channel are ids here, and a message's text is text.
            for key in ("user", "channel"):
                if not isinstance(event.get(key), str | _NONE):
                    return f"{event['type']} event whose '{key}' is not an id"
            if not isinstance(event.get("text"), str | _NONE):
                return "message event whose text is not text"
        return None
    if kind in ("block_actions", "view_submission", "view_closed"):
        user = body.get("user")
        if not isinstance(user, dict) or not _is_str(user.get("id")):
            return f"{kind} without a user"
        for key in ("channel", "team"):
            if not isinstance(body.get(key), dict | _NONE):
                return f"{kind} whose {key} is not an object"
        if kind == "block_actions":
            actions = body.get("actions")
            if not isinstance(actions, list) or not actions:
                return "block_actions without actions"
            if not all(isinstance(a, dict) and isinstance(a.get("action_id"), str) for a in actions):
                return "block_actions with an action that has no action_id"
        else:
            view = body.get("view")
            if not isinstance(view, dict) or not isinstance(view.get("callback_id"), str):
                return f"{kind} without a view callback_id"
            if not isinstance(view.get("type"), str) or view["type"] == "workflow_step":
                # bolt reads body["workflow_step"] for a "workflow_step" view; we never open one.
                return f"{kind} of a view that is not ours"
        return None
    if kind in _OTHER_KINDS:
        return None
    # Shortcuts, dialogs, legacy attachments, workflow steps: nothing of Blendwise sends them, and bolt reads
    # their required keys without checking, so they are refused rather than half-handled.
    return f"payload type '{kind[:40]}' is not one Blendwise handles"


# --------------------------------------------------------------------------------------------------------------
# Helpers


def _dict(value: object) -> dict[str, Any]:
    """``value`` if it is an object, else an empty one: for the parts of a payload no key type covers."""
    return value if isinstance(value, dict) else {}


def _team_of(payload: SlackBlockActions | SlackViewSubmission) -> str:
    team = payload.get("team") or {}
    return team.get("id") or payload.get("user", {}).get("team_id") or ""


def _actor(workspace: str, user_id: str, name: str = "") -> Actor:
    return Actor(platform=PLATFORM, workspace=workspace, user_id=user_id, name=name)


_UNIQUE_SUFFIX_RE = re.compile(r"#\d+$")


def parse_action_id(action_id: str, value: str | None) -> tuple[str, str] | None:
    """``bw:<action>:<value>`` -> (action, value); ``None`` for ids that are not ours (link buttons, other apps).

    The button's ``value`` field is authoritative when present: an action_id may carry a ``#n`` suffix that keeps
    it unique in its message, or a digest in place of a long value.
    """
    if not action_id.startswith(ACTION_PREFIX):
        return None
    action, sep, rest = action_id[len(ACTION_PREFIX) :].partition(":")
    if not action or not sep:
        return None
    if value is not None:
        return action, value
    return action, _UNIQUE_SUFFIX_RE.sub("", rest)


_MENTION_RE = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def mentioned_users(text: str) -> tuple[str, ...]:
    """User ids from Slack's escaped mentions (``<@U123|name>`` or ``<@U123>``), in order, without repeats."""
    seen: dict[str, None] = {}
    for user_id in _MENTION_RE.findall(text):
        seen.setdefault(user_id, None)
    return tuple(seen)


# --------------------------------------------------------------------------------------------------------------
# Converters


def button_pressed(body: dict[str, Any]) -> list[tuple[ButtonPressed, ReplyTarget]]:
    """block_actions -> one :class:`ButtonPressed` per action of ours (Slack sends one per click)."""
    payload = cast(SlackBlockActions, body)
    user = payload.get("user") or {}
    user_id = user.get("id", "")
    workspace = _team_of(payload)
    container = payload.get("container") or {}
    channel = container.get("channel_id") or (payload.get("channel") or {}).get("id")
    message_ts = container.get("message_ts") or (payload.get("message") or {}).get("ts")
    in_view = container.get("type") == "view"
    target = ReplyTarget(
        workspace=workspace,
        user_id=user_id,
        channel=channel,
        message_ts=message_ts,
        thread_ts=container.get("thread_ts"),
        response_url=payload.get("response_url"),
        trigger_id=payload.get("trigger_id"),
        is_ephemeral=bool(container.get("is_ephemeral")),
        in_view=in_view,
    )
    ref = MessageRef(PLATFORM, channel, message_ts) if channel and message_ts and not in_view else None
    results: list[tuple[ButtonPressed, ReplyTarget]] = []
    for action in payload.get("actions") or []:
        parsed = parse_action_id(str(action.get("action_id") or ""), action.get("value"))
        if parsed is None or not user_id:
            continue
        stamp = action.get("action_ts") or payload.get("trigger_id") or ""
        dedupe = f"slack:action:{workspace}:{user_id}:{stamp}:{action.get('action_id')}" if stamp else None
        event = ButtonPressed(
            actor=_actor(workspace, user_id, user.get("name") or user.get("username") or ""),
            action=parsed[0],
            value=parsed[1],
            message=ref,
            dedupe_key=dedupe,
        )
        results.append((event, target))
    return results


def modal_submitted(body: dict[str, Any]) -> tuple[ModalSubmitted, ReplyTarget] | None:
    """view_submission of our reflection modal -> :class:`ModalSubmitted`."""
    payload = cast(SlackViewSubmission, body)
    view = payload.get("view") or {}
    if view.get("callback_id") != MODAL_CALLBACK_ID:
        return None
    try:
        metadata = json.loads(view.get("private_metadata") or "{}")
    except (ValueError, RecursionError):
        return None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("action"), str):
        return None
    user = payload.get("user") or {}
    user_id = user.get("id", "")
    workspace = _team_of(payload) or view.get("team_id", "")
    values = _dict((view.get("state") or {}).get("values"))
    text = _dict(_dict(values.get(MODAL_BLOCK_ID)).get(MODAL_INPUT_ACTION_ID)).get("value") or ""
    view_id = view.get("id")
    event = ModalSubmitted(
        actor=_actor(workspace, user_id, user.get("name") or user.get("username") or ""),
        action=metadata["action"],
        value=str(metadata.get("value", "")),
        text=text,
        dedupe_key=f"slack:view:{workspace}:{view_id}" if view_id else None,
    )
    origin_channel = metadata.get("channel") if isinstance(metadata.get("channel"), str) else None
    origin_ts = metadata.get("ts") if isinstance(metadata.get("ts"), str) else None
    target = ReplyTarget(
        workspace=workspace,
        user_id=user_id,
        channel=origin_channel,
        message_ts=origin_ts,
        trigger_id=payload.get("trigger_id"),
    )
    return event, target


def event_workspace(body: dict[str, Any]) -> str:
    envelope = cast(SlackEventCallback, body)
    if envelope.get("team_id"):
        return envelope["team_id"]
    authorizations = body.get("authorizations") or []
    if authorizations and isinstance(authorizations[0], dict):
        return str(authorizations[0].get("team_id") or "")
    return ""


# Subtypes that are a person's new message; everything else (edits, deletions, joins, bot posts) is ignored.
_PERSON_SUBTYPES = frozenset({"", "thread_broadcast", "file_share"})


def thread_reply(body: dict[str, Any]) -> tuple[ThreadReply, ReplyTarget] | None:
    """A person's reply in a thread -> :class:`ThreadReply`. Top-level messages, bot messages, edits and other
    subtypes are not replies and give ``None``."""
    event = cast(SlackMessageEvent, body.get("event") or {})
    if event.get("type") != "message" or event.get("bot_id"):
        return None
    if event.get("subtype", "") not in _PERSON_SUBTYPES:
        return None
    thread_ts, ts, user_id, channel = (
        event.get("thread_ts"),
        event.get("ts"),
        event.get("user"),
        event.get("channel"),
    )
    if not (thread_ts and ts and user_id and channel) or thread_ts == ts:
        return None
    workspace = event_workspace(body)
    reply = ThreadReply(
        actor=_actor(workspace, user_id),
        channel=channel,
        thread=thread_ts,
        text=slack_text_to_plain(event.get("text") or ""),
        message_id=ts,
    )
    return reply, ReplyTarget(workspace=workspace, user_id=user_id, channel=channel, thread_ts=thread_ts)


def home_opened(body: dict[str, Any]) -> Actor | None:
    """app_home_opened on the Home tab -> the actor whose Home to publish."""
    event = cast(SlackAppHomeOpened, body.get("event") or {})
    if event.get("type") != "app_home_opened" or event.get("tab", "home") != "home" or not event.get("user"):
        return None
    return _actor(event_workspace(body), event["user"])


def command_invoked(body: dict[str, Any]) -> tuple[CommandInvoked, ReplyTarget] | None:
    """A slash command -> :class:`CommandInvoked`. ``args`` is plain text (mentions read as ``@name``);
    the mentioned user ids are listed separately."""
    payload = cast(SlackSlashCommand, body)
    user_id = payload.get("user_id")
    if not user_id:
        return None
    raw = payload.get("text") or ""
    workspace = payload.get("team_id") or payload.get("enterprise_id") or ""
    channel = payload.get("channel_id") or ""
    event = CommandInvoked(
        actor=_actor(workspace, user_id, payload.get("user_name") or ""),
        args=" ".join(slack_text_to_plain(raw).split()),
        channel=channel,
        mentioned_users=mentioned_users(raw),
        # trigger_id is unique per invocation, so a replayed request carries the same one.
        dedupe_key=f"slack:cmd:{workspace}:{payload['trigger_id']}" if payload.get("trigger_id") else None,
    )
    target = ReplyTarget(
        workspace=workspace,
        user_id=user_id,
        channel=channel or None,
        response_url=payload.get("response_url"),
        trigger_id=payload.get("trigger_id"),
    )
    return event, target


def event_dedupe_key(body: dict[str, Any]) -> str | None:
    event_id = body.get("event_id")
    return f"slack:event:{event_id}" if isinstance(event_id, str) and event_id else None
