"""The ``slack:`` section of app.yaml, its SLACK_* variables and the factory, registered with the platform registry.

This module must not import slack_bolt or slack_sdk: app.yaml is validated where the ``slack`` extra is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from bot.platforms import PLATFORMS, PlatformParts, PlatformSpec

if TYPE_CHECKING:
    from bot.messages import Message
    from bot.ports import Adapter


class SlackSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    api_url: str | None = None
    #: The port of the HTTP endpoint; also the HTTP tier's port when ``web.port`` is unset.
    port: int = Field(default=3000, ge=1, le=65535)
    workspace_rate: float = Field(default=5.0, gt=0)
    per_channel_interval: float = Field(default=1.0, ge=0)


def _build(section: SlackSettings, parts: PlatformParts) -> Adapter:
    from bot.adapters.slack import build_slack_adapter

    return build_slack_adapter(parts.settings, parts.db)


def _preview(message: Message) -> str:
    import json

    from bot.adapters.slack.render import render_message

    return json.dumps([part.api_kwargs() for part in render_message(message)], indent=2, ensure_ascii=False)


SPEC = PLATFORMS.register(
    PlatformSpec(
        name="slack",
        settings_model=SlackSettings,
        factory=_build,
        env={
            "bot_token": "SLACK_BOT_TOKEN",
            "signing_secret": "SLACK_SIGNING_SECRET",
            "app_token": "SLACK_APP_TOKEN",
            "client_id": "SLACK_CLIENT_ID",
            "client_secret": "SLACK_CLIENT_SECRET",
            "api_url": "SLACK_API_URL",
        },
        owner=__name__,
        preview=_preview,
        extra="slack",
    )
)
