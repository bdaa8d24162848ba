"""The Discord adapter (discord.py 2.x). This package is the only place in Blendwise that imports ``discord``.

Connecting a real server (the README's section can be taken from here):

1. In the Discord developer portal, create an application and its bot; copy the bot token into ``DISCORD_TOKEN``.
   No privileged intent is needed. Enable MESSAGE CONTENT INTENT only if ``read_message_content`` is on (the core
   then receives the text of thread replies; completion does not need it).
2. Invite the bot with the scopes ``bot`` and ``applications.commands`` and the permissions View Channels, Send
   Messages, Send Messages in Threads, Create Public Threads, Embed Links, Attach Files, Read Message History,
   Create Events and Manage Events (permissions integer ``17910013742080``).
3. In app.yaml, list the server id under ``discord.guild_ids``, map cohorts to text or forum channel ids under
   ``discord.cohort_channels``, and name the Discord roles that make someone a lead or an admin.
4. ``blendwise run``: ``/learn`` is registered in each listed server at start-up and appears at once.

For tests and demos, ``DISCORD_API_URL`` / ``DISCORD_GATEWAY_URL`` point discord.py at ``tests/fakes/discord_server``
(``python -m tests.fakes.discord_server`` prints both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.errors import ConfigError

if TYPE_CHECKING:
    from bot.adapters.discord.adapter import DiscordAdapter, intents_for
    from bot.adapters.discord.endpoints import configure_endpoints
    from bot.clock import Clock
    from bot.config import Settings

__all__ = ["DiscordAdapter", "build_discord_adapter", "configure_endpoints", "intents_for"]


def build_discord_adapter(settings: Settings, clock: Clock | None = None) -> DiscordAdapter:
    """The adapter from the ``discord:`` section of app.yaml (the token comes from ``DISCORD_TOKEN``)."""
    from bot.adapters.discord.adapter import DiscordAdapter
    from bot.adapters.discord.settings import DiscordSettings

    cfg = settings.section("discord", DiscordSettings)
    if cfg.token is None or not cfg.token.get_secret_value():
        raise ConfigError("discord.token", "set DISCORD_TOKEN to the bot token")
    if not cfg.guild_ids:
        raise ConfigError("discord.guild_ids", "list the id of at least one server (guild) the bot serves")
    return DiscordAdapter(
        token=cfg.token.get_secret_value(),
        guild_ids=cfg.guild_ids,
        cohort_channels=cfg.cohort_channels,
        lead_roles=cfg.lead_roles,
        admin_roles=cfg.admin_roles,
        api_url=cfg.api_url,
        gateway_url=cfg.gateway_url,
        voice_min_minutes=cfg.voice_min_minutes,
        voice_channel=cfg.voice_channel,
        read_message_content=cfg.read_message_content,
        clock=clock,
    )


def __getattr__(name: str) -> Any:
    # The SDK is imported on first use, so ``bot.adapters.discord.settings`` (app.yaml validation) works without it.
    if name in ("DiscordAdapter", "intents_for"):
        from bot.adapters.discord import adapter

        return getattr(adapter, name)
    if name == "configure_endpoints":
        from bot.adapters.discord.endpoints import configure_endpoints

        return configure_endpoints
    raise AttributeError(name)
