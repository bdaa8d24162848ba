"""Discord payloads -> core events. Nothing from discord.py leaves this module in an event.

The workspace of a Discord actor is the guild id. A DM has no guild, so presses and submissions in DMs are
attributed to the adapter's primary guild (the first configured one): a Blendwise deployment on Discord serves
its learners from one server.
"""

from __future__ import annotations

import re
from typing import Any

import discord

from bot.adapters.discord.commands import GROUP_NAME
from bot.adapters.discord.ui import MODAL_INPUT_ID, parse_custom_id
from bot.events import Actor, ButtonPressed, CommandInvoked, ModalSubmitted, RsvpChanged, ThreadReply
from bot.messages import MessageRef

PLATFORM = "discord"
_USER_MENTION = re.compile(r"<@!?(\d+)>")


def role_names(user: discord.abc.User) -> tuple[str, ...]:
    """The member's role names, without ``@everyone``; empty outside a guild."""
    if not isinstance(user, discord.Member):
        return ()
    return tuple(role.name for role in user.roles if not role.is_default())


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
    return MessageRef(PLATFORM, str(message.channel.id), str(message.id))


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
