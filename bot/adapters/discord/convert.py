"""Discord payloads -> core events. Nothing from discord.py leaves this module in an event.

The workspace of a Discord actor is the guild id. A DM has no guild, so presses and submissions in DMs are
attributed to the adapter's primary guild (the first configured one): a Blendwise deployment on Discord serves
its learners from one server.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import discord

from bot.adapters.discord.commands import GROUP_NAME
from bot.adapters.discord.ui import MODAL_INPUT_ID, parse_custom_id
from bot.events import Actor, ButtonPressed, CommandInvoked, ModalSubmitted, RsvpChanged, ThreadReply
from bot.messages import MessageRef

PLATFORM = "discord"
logger = logging.getLogger(__name__)
_USER_MENTION = re.compile(r"<@!?(\d+)>")


def role_names(user: discord.abc.User) -> tuple[str, ...]:
    """The member's role names, without ``@everyone``; empty outside a guild."""
    if not isinstance(user, discord.Member):
        return ()
    return tuple(role.name for role in user.roles if not role.is_default())


def has_user(interaction: discord.Interaction[Any]) -> bool:
    """Whether discord.py found who acted. It leaves ``user`` unset when a payload's member or user was not where
    it looked; such an interaction has nobody to act for, so it is dropped with one log line."""
    if isinstance(interaction.user, discord.User | discord.Member):
        return True
    logger.warning("Dropped Discord interaction %s: it names no user", interaction.id)
    return False


def actor_from(user: discord.abc.User, workspace: str) -> Actor:
    return Actor(PLATFORM, workspace, str(user.id), user.display_name, role_names(user))


def workspace_of(interaction: discord.Interaction[Any], default: str) -> str:
    return str(interaction.guild_id) if interaction.guild_id else default


def dedupe_key(interaction: discord.Interaction[Any]) -> str:
    """Discord redelivers an interaction (e.g. when a RESUME replays events) with the same id."""
    return f"discord:interaction:{interaction.id}"


def message_ref(interaction: discord.Interaction[Any]) -> MessageRef | None:
    message = interaction.message
    if message is None:
        return None
    # discord.py gives the message the interaction's channel, which is None when the payload names none: then the
    # message's own channel id, if any; without either there is nothing to refer to.
    channel = getattr(message.channel, "id", None) or interaction.channel_id
    if channel is None:
        return None
    return MessageRef(PLATFORM, str(channel), str(message.id))


def button_pressed(
    interaction: discord.Interaction[Any], action: str, value: str, workspace: str
) -> ButtonPressed:
    return ButtonPressed(
        actor=actor_from(interaction.user, workspace),
        action=action,
        value=value,
        message=message_ref(interaction),
        dedupe_key=dedupe_key(interaction),
    )


def modal_text(components: list[dict[str, Any]], input_id: str = MODAL_INPUT_ID) -> str:
    """The submitted value of text input ``input_id`` (else the first text input), in action rows or labels."""
    values: list[tuple[str, str]] = []

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            if item.get("type") == 4:
                values.append((str(item.get("custom_id", "")), str(item.get("value") or "")))
            if "components" in item:
                walk(item["components"])
            if "component" in item:
                walk([item["component"]])

    walk(components)
    for custom_id, value in values:
        if custom_id == input_id:
            return value
    return values[0][1] if values else ""


def modal_submitted(interaction: discord.Interaction[Any], workspace: str) -> ModalSubmitted | None:
    """A ``bw:`` modal submission, read from the raw interaction data; ``None`` if the modal is not ours."""
    data: dict[str, Any] = dict(interaction.data or {})
    parsed = parse_custom_id(str(data.get("custom_id", "")))
    if parsed is None:
        return None
    action, value = parsed
    return ModalSubmitted(
        actor=actor_from(interaction.user, workspace),
        action=action,
        value=value,
        text=modal_text(list(data.get("components") or [])),
        dedupe_key=dedupe_key(interaction),
    )


def mentioned_users(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_USER_MENTION.findall(text)))


def command_invoked(
    interaction: discord.Interaction[Any],
    subcommand: str,
    text: str | None,
    workspace: str,
    *,
    user: discord.abc.User | None = None,
    attachment: tuple[str, bytes] | None = None,
) -> CommandInvoked:
    """``/learn <subcommand> [text]`` as the raw argument text Slack would give: ``"<subcommand> <text>"``.

    A user picked in a USER option is appended as a mention, so the core sees it as it would a typed one.
    """
    args = " ".join(p for p in (subcommand, (text or "").strip()) if p)
    mentions = list(mentioned_users(text or ""))
    if user is not None:
        args = f"{args} <@{user.id}>"
        if str(user.id) not in mentions:
            mentions.append(str(user.id))
    return CommandInvoked(
        actor=actor_from(interaction.user, workspace),
        args=args,
        channel=str(interaction.channel_id or ""),
        mentioned_users=tuple(mentions),
        attachments=(attachment,) if attachment else (),
        # The gateway can deliver an interaction twice; its id makes the second one a no-op in the core.
        dedupe_key=dedupe_key(interaction),
    )


def unknown_subcommand(interaction: discord.Interaction[Any], workspace: str) -> CommandInvoked | None:
    """``/learn <name> ...`` for a subcommand the bot does not register (sent by a client with an outdated command
    list), as the raw argument text; ``None`` if the interaction is not a ``/learn`` subcommand."""
    data: dict[str, Any] = dict(interaction.data or {})
    if data.get("name") != GROUP_NAME:
        return None
    sub = next((o for o in data.get("options") or [] if o.get("type") in (1, 2)), None)
    if sub is None:
        return None
    text = " ".join(str(o["value"]) for o in sub.get("options") or [] if "value" in o)
    return command_invoked(interaction, str(sub["name"]), text, workspace)


def thread_reply(message: discord.Message, thread: discord.Thread) -> ThreadReply:
    workspace = str(thread.guild.id)
    return ThreadReply(
        actor=actor_from(message.author, workspace),
        channel=str(thread.parent_id),
        thread=str(thread.id),
        text=message.content,
        message_id=str(message.id),
    )


def rsvp_changed(data: dict[str, Any], *, going: bool, name: str = "") -> RsvpChanged:
    """A raw GUILD_SCHEDULED_EVENT_USER_ADD/REMOVE payload (it carries ids only)."""
    actor = Actor(PLATFORM, str(data["guild_id"]), str(data["user_id"]), name)
    return RsvpChanged(actor=actor, session_ref=str(data["guild_scheduled_event_id"]), going=going)


# --------------------------------------------------------------------------------------------------------------
# Validation before discord.py
#
# discord.py reads an INTERACTION_CREATE payload with int(data["id"]), data["token"], member["user"] and friends,
# in the gateway's receive loop: one missing key or a snowflake that is not a number stops the client. Discord sends
# well-formed payloads, but a client that dies on one bad frame is a denial of service waiting for a platform bug,
# so the adapter checks the shape first (interaction_problem) and drops what fails with one log line.

#: Discord's payloads nest a few levels (options in subcommand groups, components in rows in labels).
MAX_DEPTH = 32
SNOWFLAKE_MAX = 2**64 - 1
_INTERACTION_TYPES = frozenset({1, 2, 3, 4, 5})
_OPTION_VALUE = (str, int, float, bool)


def _snowflake(value: object) -> bool:
    """A Discord id: a positive 64-bit number, as a string or a number (0 is no id: discord.py reads it as absent)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 < value <= SNOWFLAKE_MAX
    return isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20 and (
        0 < int(value) <= SNOWFLAKE_MAX
    )


def _text_problem(body: object) -> str | None:
    """Walk once, without recursion: nesting too deep, NUL or a lone surrogate anywhere, a number out of range."""
    stack: list[tuple[object, int]] = [(body, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return "payload is nested too deeply"
        values: list[object] = []
        if isinstance(node, dict):
            values = [*node.keys(), *node.values()]
        elif isinstance(node, list):
            values = list(node)
        for value in values:
            if isinstance(value, dict | list):
                stack.append((value, depth + 1))
            elif isinstance(value, str):
                if "\x00" in value:
                    return "a string holds a NUL character"
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return "a string holds a lone surrogate"
            elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > SNOWFLAKE_MAX:
                return "a number is out of range"
            elif isinstance(value, float) and value != value:  # NaN never comes from Discord
                return "a number is not a number"
    return None


def _user_problem(user: object, what: str) -> str | None:
    if not isinstance(user, dict) or not _snowflake(user.get("id")):
        return f"{what} has no user id"
    if not isinstance(user.get("username"), str) or not isinstance(user.get("discriminator"), str):
        return f"{what} has no username or discriminator"
    for key in ("global_name", "avatar", "banner"):
        if not isinstance(user.get(key), str | None):
            return f"{what}'s {key} is not text"
    if not isinstance(user.get("bot", False), bool) or not isinstance(user.get("public_flags", 0), int):
        return f"{what} has flags of the wrong type"
    return None


def _option_problem(options: object, depth: int = 0) -> str | None:
    if not isinstance(options, list):
        return "options is not a list"
    for option in options:
        if not isinstance(option, dict) or not isinstance(option.get("name"), str):
            return "an option has no name"
        if not isinstance(option.get("type"), int) or isinstance(option.get("type"), bool):
            return "an option has no type"
        if "value" in option and not isinstance(option["value"], _OPTION_VALUE):
            return "an option value is not a value"
        if "options" in option and (depth > 2 or _option_problem(option["options"], depth + 1) is not None):
            return "a subcommand's options are malformed"
    return None


def _component_problem(components: object, depth: int = 0) -> str | None:
    if not isinstance(components, list):
        return "components is not a list"
    for item in components:
        if not isinstance(item, dict) or not isinstance(item.get("type"), int) or isinstance(item["type"], bool):
            return "a component has no type"
        for key in ("custom_id", "label", "value", "placeholder", "url"):
            if not isinstance(item.get(key), str | None):
                return f"a component's {key} is not text"
        if not isinstance(item.get("style", 1), int) or not isinstance(item.get("disabled", False), bool):
            return "a component's style is malformed"
        if depth > 3:
            return "components are nested too deeply"
        if "components" in item and (problem := _component_problem(item["components"], depth + 1)) is not None:
            return problem
        if "component" in item and (problem := _component_problem([item["component"]], depth + 1)) is not None:
            return problem
    return None


def _message_problem(message: object) -> str | None:
    if not isinstance(message, dict):
        return "message is not an object"
    for key in ("id", "channel_id"):
        if not _snowflake(message.get(key)):
            return f"message {key} is not a snowflake"
    if (problem := _user_problem(message.get("author"), "message author")) is not None:
        return problem
    if not isinstance(message.get("content"), str) or not isinstance(message.get("timestamp"), str):
        return "message has no content or timestamp"
    for key in ("embeds", "attachments", "mentions", "mention_roles", "components"):
        if not isinstance(message.get(key, []), list):
            return f"message {key} is not a list"
    for key in ("type", "flags"):
        if not isinstance(message.get(key, 0), int) or isinstance(message.get(key, 0), bool):
            return f"message {key} is not a number"
    if not all(isinstance(e, dict) for e in [*message.get("embeds", []), *message.get("attachments", [])]):
        return "message embeds or attachments are not objects"
    if not all(_user_problem(u, "mention") is None for u in message.get("mentions", [])):
        return "message mentions are malformed"
    if not all(_snowflake(r) for r in message.get("mention_roles", [])):
        return "message role mentions are not snowflakes"
    return _component_problem(message.get("components", []))


def interaction_problem(payload: object) -> str | None:
    """What makes a raw INTERACTION_CREATE payload unreadable, or ``None`` if discord.py and the converters above
    can read it: snowflakes that are numbers, the keys discord.py indexes without checking, and per interaction
    type the shape of ``data`` (slash command options, a button's custom_id, a modal's components)."""
    if not isinstance(payload, dict):
        return "interaction is not an object"
    kind = payload.get("type")
    return _envelope_problem(payload) or _actor_problem(payload) or (None if kind == 1 else _data_problem(payload))


def _envelope_problem(payload: dict[str, Any]) -> str | None:
    """The interaction's ids, type, token, version and context fields."""
    if (problem := _text_problem(payload)) is not None:
        return problem
    for key in ("id", "application_id"):
        if not _snowflake(payload.get(key)):
            return f"{key} is not a snowflake"
    for key in ("channel_id", "guild_id"):
        if payload.get(key) is not None and not _snowflake(payload[key]):
            return f"{key} is not a snowflake"
    kind = payload.get("type")
    if not isinstance(kind, int) or isinstance(kind, bool) or kind not in _INTERACTION_TYPES:
        return "unknown interaction type"
    if not isinstance(payload.get("token"), str) or not payload["token"]:
        return "interaction has no token"
    if not isinstance(payload.get("version"), int):
        return "version is not a number"
    for key in ("locale", "guild_locale", "app_permissions"):
        if not isinstance(payload.get(key), str | None):
            return f"{key} is not text"
    if not isinstance(payload.get("context", 0), int | None) or not isinstance(payload.get("entitlements", []), list):
        return "context or entitlements are malformed"
    if not all(isinstance(e, dict) for e in payload.get("entitlements") or []):
        return "an entitlement is not an object"
    owners = payload.get("authorizing_integration_owners", {})
    if not isinstance(owners, dict) or not all(_snowflake(v) and str(k).isdigit() for k, v in owners.items()):
        return "authorizing_integration_owners is malformed"
    channel = payload.get("channel")
    if channel is not None and (
        not isinstance(channel, dict) or not _snowflake(channel.get("id")) or not isinstance(channel.get("type"), int)
    ):
        return "channel is malformed"
    return None


def _actor_problem(payload: dict[str, Any]) -> str | None:
    """The member (in a guild) or the user (elsewhere) who acted."""
    member = payload.get("member")
    # discord.py reads the member in a guild and the user elsewhere, and leaves the interaction without a user if
    # the one it looks for is missing.
    if payload.get("guild_id") is not None:
        if member is None:
            return "a guild interaction without a member"
        if not isinstance(payload.get("guild", {}), dict):
            return "guild is not an object"
    elif member is not None:
        return "a member outside a guild"
    if member is not None:
        if not isinstance(member, dict) or (problem := _user_problem(member.get("user"), "member")) is not None:
            return problem or "member is not an object"
        if not isinstance(member.get("roles", []), list) or not all(_snowflake(r) for r in member.get("roles", [])):
            return "member roles are not snowflakes"
        for key in ("nick", "avatar", "joined_at", "premium_since", "communication_disabled_until"):
            if not isinstance(member.get(key), str | None):
                return f"member {key} is not text"
        permissions = member.get("permissions", "0")
        if not isinstance(permissions, str) or not permissions.isdigit() or len(permissions) > 20:
            return "member permissions are not a number"
        if not isinstance(member.get("flags", 0), int) or not isinstance(member.get("pending", False), bool):
            return "member flags are malformed"
    elif (problem := _user_problem(payload.get("user"), "user")) is not None:
        return problem
    return None


def _data_problem(payload: dict[str, Any]) -> str | None:
    """Per interaction type, the shape of ``data``: command options, a component's custom_id, modal components."""
    kind = payload.get("type")
    data = payload.get("data")
    if not isinstance(data, dict):
        return "interaction has no data"
    if kind in (2, 4):
        if not _snowflake(data.get("id")) or not isinstance(data.get("name"), str):
            return "command has no id or name"
        if not isinstance(data.get("type", 1), int) or (data.get("guild_id") and not _snowflake(data["guild_id"])):
            return "command type or guild is malformed"
        if not isinstance(data.get("resolved", {}), dict):
            return "resolved is not an object"
        if any(not isinstance(v, dict) for v in data.get("resolved", {}).values()):
            return "resolved holds something that is not an object"
        return _option_problem(data.get("options", []))
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not 0 < len(custom_id) <= 100:
        return "custom_id is missing or too long"
    if kind == 3:
        component_type = data.get("component_type")
        if not isinstance(component_type, int) or isinstance(component_type, bool):
            return "component_type is not a number"
        if custom_id.startswith("bw:") and component_type != 2:
            return "a Blendwise custom_id on a component that is not a button"
        if not isinstance(data.get("values", []), list):
            return "values is not a list"
        if "message" in payload and (problem := _message_problem(payload["message"])) is not None:
            return problem
        return None
    if "message" in payload and (problem := _message_problem(payload["message"])) is not None:
        return problem
    return _component_problem(data.get("components", []))
