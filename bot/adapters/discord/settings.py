"""The ``discord:`` section of app.yaml, its DISCORD_* variables and the factory, registered with the platform
registry.

This module must not import discord.py: app.yaml is validated where the ``discord`` extra is missing (the package's
``__init__`` imports the SDK lazily for the same reason).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from bot.platforms import PLATFORMS, PlatformParts, PlatformSpec

if TYPE_CHECKING:
    from bot.messages import Message
    from bot.ports import Adapter


class DiscordSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: SecretStr | None = None
    guild_ids: list[str] = Field(default_factory=list)
    cohort_channels: dict[str, str] = Field(default_factory=dict)
    lead_roles: list[str] = Field(default_factory=lambda: ["Cohort Lead"])
    admin_roles: list[str] = Field(default_factory=lambda: ["Learning Admin"])
    api_url: str | None = None
    gateway_url: str | None = None
    #: Minutes in a session's voice/stage channel that count as attending when its step sets no
    #: ``checkin.min_minutes`` (a step's own minimum wins, as it does for every attendance source).
    voice_min_minutes: float = Field(default=10, ge=0)
    #: The voice or stage channel (id or name) of mirrored live sessions, whose attendance is then tracked.
    voice_channel: str | None = None
    read_message_content: bool = False


def _build(section: DiscordSettings, parts: PlatformParts) -> Adapter:
    from bot.adapters.discord import build_discord_adapter

    return build_discord_adapter(parts.settings, parts.clock)


def _preview(message: Message) -> str:
    import json

    from bot.adapters.discord.render import render

    parts = [
        {
            "content": part.content,
            "embeds": [embed.to_dict() for embed in part.embeds],
            "components": view.to_components() if (view := part.view()) is not None else [],
            "files": [file.filename for file in part.files],
        }
        for part in render(message)
    ]
    return json.dumps(parts, indent=2, ensure_ascii=False)


SPEC = PLATFORMS.register(
    PlatformSpec(
        name="discord",
        settings_model=DiscordSettings,
        factory=_build,
        env={"token": "DISCORD_TOKEN", "api_url": "DISCORD_API_URL", "gateway_url": "DISCORD_GATEWAY_URL"},
        owner=__name__,
        preview=_preview,
        extra="discord",
    )
)
