"""Teams activities -> core events, at the edge.

An activity is checked for the shape Blendwise reads (``problem_with``) after the SDK validated its token and its
schema, so a signed but odd payload is a 400 and one log line, never a traceback. People are keyed by their Entra
object id (``from.aadObjectId``), the id an admin writes in ``teams.admins`` and a roster's ``user_id``; the
workspace is the tenant. The conversation-scoped ``29:…`` id is kept in the stored reference only.
"""

from __future__ import annotations

import html
import re
from typing import Any

from bot.adapters.teams.cards import INPUT_ID, MODAL_VERB
from bot.events import Actor, ButtonPressed, CommandInvoked, InboundEvent, ModalSubmitted, ThreadReply
from bot.messages import MessageRef

PLATFORM = "teams"
#: The invoke a Universal Action (``Action.Execute``) press arrives as.
CARD_ACTION = "adaptiveCard/action"
#: Meeting events (the app added to the meeting, with the OnlineMeeting* resource-specific permissions).
MEETING_START = "application/vnd.microsoft.meetingStart"
MEETING_END = "application/vnd.microsoft.meetingEnd"
PARTICIPANT_JOIN = "application/vnd.microsoft.meetingParticipantJoin"
PARTICIPANT_LEAVE = "application/vnd.microsoft.meetingParticipantLeave"
_MENTION = re.compile(r"<at>.*?</at>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")
_COMMAND = re.compile(r"^\s*/?learn\b\s*", re.IGNORECASE)


def obj(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (optional parts of an activity)."""
    return value if isinstance(value, dict) else {}


def _str(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 512


def problem_with(activity: object) -> str | None:
    """Why ``activity`` is not an activity Blendwise can read, or ``None``."""
    if not isinstance(activity, dict):
        return "not a JSON object"
    if not _str(activity.get("type")):
        return "no type"
    for key in ("from", "conversation"):
        part = activity.get(key)
        if not isinstance(part, dict) or not _str(part.get("id")):
            return f"no {key}.id"
    if not _str(activity.get("serviceUrl")):
        return "no serviceUrl"
    for key in ("channelData", "value"):
        if activity.get(key) is not None and not isinstance(activity[key], dict | list | str):
            return f"{key} is not an object"
    if activity.get("text") is not None and not isinstance(activity["text"], str):
        return "text is not a string"
    return None


def tenant_of(activity: dict[str, Any]) -> str:
    tenant = obj(obj(activity.get("channelData")).get("tenant")).get("id")
    return str(tenant or activity["conversation"].get("tenantId") or "")


def user_key(account: dict[str, Any]) -> str:
    """A person's key: the Entra object id, or the Teams id where Teams sends none (a guest, the emulator)."""
    return str(account.get("aadObjectId") or account["id"])


def actor(activity: dict[str, Any], roles: tuple[str, ...] = ()) -> Actor:
    sender = activity["from"]
    return Actor(PLATFORM, tenant_of(activity), user_key(sender), str(sender.get("name") or ""), roles=roles)


def conversation_type(activity: dict[str, Any]) -> str:
    return str(activity["conversation"].get("conversationType") or "personal")


def channel_of(activity: dict[str, Any]) -> str:
    """A channel message's channel id (the conversation id without its ``;messageid=`` thread suffix)."""
    channel = obj(obj(activity.get("channelData")).get("channel")).get("id")
    return str(channel or activity["conversation"]["id"].split(";", 1)[0])


def thread_of(activity: dict[str, Any]) -> str | None:
    """The root message id of the channel thread ``activity`` was posted in, if any."""
    _, _, suffix = activity["conversation"]["id"].partition(";messageid=")
    return suffix or activity.get("replyToId") or None


def plain_text(activity: dict[str, Any]) -> str:
    """The text a person typed: mentions (``<at>Blendwise</at>``) and HTML formatting removed."""
    text = _MENTION.sub(" ", str(activity.get("text") or ""))
    return html.unescape(_TAGS.sub(" ", text)).strip()


def command_args(text: str, personal: bool) -> str | None:
    """``learn progress`` (or ``/learn progress``) -> ``progress``; in a personal chat the word ``learn`` is optional
    (the manifest's command list sends bare ``progress``). ``None``: not a command."""
    if _COMMAND.match(text):
        return _COMMAND.sub("", text, count=1).strip()
    return text.strip() if personal else None


def card_action(activity: dict[str, Any], roles: tuple[str, ...]) -> InboundEvent | None:
    """An ``Action.Execute`` press (or a form's submit) as a core event, or ``None`` if it is not one of ours."""
    act = obj(obj(activity.get("value")).get("action"))
    data = obj(act.get("data"))
    if not isinstance(data.get("bw"), str) or not isinstance(data.get("v"), str):
        return None
    dedupe = f"teams:{activity.get('id') or ''}" if activity.get("id") else None
    who = actor(activity, roles)
    if act.get("verb") == MODAL_VERB:
        text = data.get(INPUT_ID)
        return ModalSubmitted(who, data["bw"], data["v"], text if isinstance(text, str) else "", dedupe)
    ref = None
    if _str(activity.get("replyToId")):
        ref = MessageRef(PLATFORM, activity["conversation"]["id"], str(activity["replyToId"]))
    return ButtonPressed(who, data["bw"], data["v"], ref, dedupe)


def message_event(activity: dict[str, Any], roles: tuple[str, ...], bot_id: str) -> InboundEvent | None:
    """A typed message: a command in the bot's personal chat or addressed to it in a channel, else a reply in a
    cohort thread (which counts as participation), else nothing."""
    text = plain_text(activity)
    personal = conversation_type(activity) == "personal"
    mentioned = any(
        isinstance(e, dict) and e.get("type") == "mention" and isinstance(e.get("mentioned"), dict)
        and e["mentioned"].get("id") == bot_id
        for e in activity.get("entities") or []
    )
    dedupe = f"teams:{activity['conversation']['id']}:{activity.get('id')}" if activity.get("id") else None
    args = command_args(text, personal or mentioned)
    if args is not None and (personal or mentioned):
        channel = "" if personal else channel_of(activity)
        return CommandInvoked(actor(activity, roles), args, channel, dedupe_key=dedupe)
    thread = thread_of(activity)
    if personal or thread is None:
        return None
    return ThreadReply(actor(activity, roles), channel_of(activity), thread, text, str(activity.get("id") or ""))


def meeting_members(activity: dict[str, Any]) -> list[dict[str, Any]]:
    """The participants a meeting join/leave event names."""
    members = obj(activity.get("value")).get("members")
    out = []
    for member in members if isinstance(members, list) else []:
        user = member.get("user") if isinstance(member, dict) else None
        if isinstance(user, dict) and _str(user.get("id")):
            out.append(user)
    return out


def meeting_id(activity: dict[str, Any]) -> str | None:
    value = obj(activity.get("value"))
    found = obj(obj(activity.get("channelData")).get("meeting")).get("id") or value.get("Id") or value.get("id")
    return str(found) if found else None
