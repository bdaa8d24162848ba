"""The ``/learn`` application command group: the same subcommands as Slack's ``/learn``.

Discord wants each subcommand declared up front with typed options, where Slack hands over one string. Each
subcommand therefore takes one free-text ``text`` option, and the adapter passes ``"<subcommand> <text>"`` to the
core, which parses it exactly as it parses Slack's text. Users mentioned in ``text`` arrive as ``<@id>`` (Discord
converts a picked mention in a string option to that form). ``enroll`` also takes a USER and a CSV ATTACHMENT
option, which Slack cannot offer in a slash command.

Role checks are the core's: the actor carries the member's role names, which the core maps to lead/admin with the
Discord roles configured in app.yaml. Discord's own command permissions are left open so that the core's refusal,
with its reason, is what a learner sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import discord
from discord import app_commands

from bot.ports import Subcommand

GROUP_NAME = "learn"
GROUP_DESCRIPTION = "Blendwise: your learning programs"

class CommandSink(Protocol):
    async def on_command(
        self,
        interaction: discord.Interaction[Any],
        subcommand: str,
        text: str | None,
        *,
        user: discord.User | discord.Member | None = None,
        attachment: discord.Attachment | None = None,
    ) -> None: ...


def _sink(interaction: discord.Interaction[Any]) -> CommandSink:
    return interaction.client.bridge


def _text_callback(name: str, text_help: str) -> Any:
    async def callback(interaction: discord.Interaction, text: str | None = None) -> None:
        await _sink(interaction).on_command(interaction, name, text)

    callback.__name__ = f"learn_{name}"
    return app_commands.describe(text=text_help)(callback)


def _file_callback(name: str, text_help: str, file_help: str) -> Any:
    async def callback(
        interaction: discord.Interaction, text: str | None = None, file: discord.Attachment | None = None
    ) -> None:
        await _sink(interaction).on_command(interaction, name, text, attachment=file)

    callback.__name__ = f"learn_{name}"
    return app_commands.describe(text=text_help, file=file_help)(callback)


def _enroll_callback(text_help: str) -> Any:
    async def callback(
        interaction: discord.Interaction,
        text: str | None = None,
        user: discord.User | None = None,
        file: discord.Attachment | None = None,
    ) -> None:
        await _sink(interaction).on_command(interaction, "enroll", text, user=user, attachment=file)

    return app_commands.describe(
        text=text_help,
        user="Someone to enroll",
        file="A CSV of people to enroll (one Discord user id per line)",
    )(callback)


def learn_group(subcommands: Sequence[Subcommand]) -> app_commands.Group:
    """The ``/learn`` group with one Discord subcommand per core subcommand, in the core's order.

    The list comes from the core's command registry (:meth:`bot.ports.InboundHandler.subcommands`), so a
    subcommand a feature registers (``recap``...) exists here too; this module only adds Discord's typed extras.
    """
    group = app_commands.Group(name=GROUP_NAME, description=GROUP_DESCRIPTION, guild_only=True)
    for sub in subcommands:
        description, text_help = sub.summary[:100] or sub.name, sub.arg_help[:100] or "Details (optional)"
        if sub.name == "enroll":
            callback = _enroll_callback(text_help)
        elif sub.file_help:
            callback = _file_callback(sub.name, text_help, sub.file_help)
        else:
            callback = _text_callback(sub.name, text_help)
        group.add_command(
            app_commands.Command(name=sub.name, description=description, callback=callback, parent=group)
        )
    return group
