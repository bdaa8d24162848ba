"""The Slack adapter: the only package that imports slack_bolt or slack_sdk.

``SlackAdapter`` is imported lazily so that ``blendwise slack manifest`` (which needs only the YAML) works even
where the ``slack`` extra is not installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from bot.adapters.slack.adapter import SlackAdapter
    from bot.config import Settings

__all__ = ["SlackAdapter", "build_slack_adapter"]


def build_slack_adapter(settings: Settings, db: Engine) -> SlackAdapter:
    """The adapter from the ``slack:`` section of app.yaml and the SLACK_* variables.

    With ``client_id`` and ``client_secret`` set, Blendwise runs as a multi-workspace app: installations (one bot
    token per workspace) live in ``db``, in bolt's installation tables. Otherwise ``bot_token`` serves one workspace.
    """
    from bot.adapters.slack.adapter import SlackAdapter
    from bot.adapters.slack.settings import SlackSettings

    cfg = settings.section("slack", SlackSettings)

    def secret(value: Any) -> str | None:
        return value.get_secret_value() or None if value is not None else None

    multi = bool(cfg.client_id or cfg.client_secret)
    return SlackAdapter(
        bot_token=None if multi else secret(cfg.bot_token),
        signing_secret=secret(cfg.signing_secret),
        app_token=secret(cfg.app_token),
        api_url=cfg.api_url,
        port=cfg.port,
        per_channel_interval=cfg.per_channel_interval,
        workspace_rate=cfg.workspace_rate,
        client_id=cfg.client_id if multi else None,
        client_secret=secret(cfg.client_secret) if multi else None,
        oauth_engine=db if multi else None,
    )


def __getattr__(name: str) -> Any:
    if name == "SlackAdapter":
        from bot.adapters.slack.adapter import SlackAdapter

        return SlackAdapter
    raise AttributeError(name)
