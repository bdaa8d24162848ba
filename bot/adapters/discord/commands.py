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

from typing import Any, Protocol

import discord
from discord import app_commands

GROUP_NAME = "learn"
GROUP_DESCRIPTION = "Blendwise: your learning programs"

# name -> (description, description of the free-text option). Descriptions are at most 100 characters.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "help": ("What Blendwise can do for you", "A subcommand to explain (optional)"),
    "progress": ("Your progress in your programs", "Program (optional)"),
    "next": ("Get your next step now", "Program (optional)"),
    "snooze": ("Pause reminders for a while", "How long, e.g. 2h or 3d"),
    "pause": ("Pause a program until a date or for a while", "A date (YYYY-MM-DD) or a duration, e.g. 1w"),
    "resume": ("Turn your reminders back on", "Program (optional)"),
    "team": ("Managers: how your team is doing", "Team member (optional)"),
    "prompt": ("Leads: post a discussion prompt to a cohort", "<cohort> <prompt text>"),
    "announce": ("Leads: announce something to a cohort", "<cohort> <message>"),
    "checkin": ("Leads: open or close check-in for a live session", "open|close <session> [cohort]"),
    "roster": ("Leads: who is in a cohort, and how far they are", "<cohort>"),
    "enroll": ("Admins: enroll people in a cohort", "<cohort> @person @person ..."),
    "cohort": (
        "Admins: create or list cohorts",
        "create <name> <program> <YYYY-MM-DD> [tz] [#channel] | list",
    ),
    "poll": ("Leads: post a poll to a cohort", "<cohort> <question> <options...>"),
    "recording": ("Leads: share a session's recording", "<session> <recording URL>"),
    "search": ("Search the lessons of your programs", "What to look for"),
}


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


def learn_group() -> app_commands.Group:
    group = app_commands.Group(name=GROUP_NAME, description=GROUP_DESCRIPTION, guild_only=True)
    for name, (description, text_help) in SUBCOMMANDS.items():
        callback = _enroll_callback(text_help) if name == "enroll" else _text_callback(name, text_help)
        group.add_command(
            app_commands.Command(name=name, description=description, callback=callback, parent=group)
        )
    return group
