"""The Microsoft Teams adapter, on the Microsoft 365 Agents SDK. This package is the only place in Blendwise that
imports ``microsoft_agents``.

Connecting a real tenant is described in the README ("Connecting Microsoft Teams"). For tests, ``TEAMS_SERVICE_URL``
and ``TEAMS_OPENID_METADATA_URL`` point the connector and the token validation at ``tests/fakes/teams_connector``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.errors import ConfigError

if TYPE_CHECKING:
    from bot.adapters.teams.adapter import TeamsAdapter
    from bot.adapters.teams.settings import TeamsSettings
    from bot.platforms import PlatformParts

__all__ = ["build_teams_adapter"]


def build_teams_adapter(cfg: TeamsSettings, parts: PlatformParts) -> TeamsAdapter:
    """The adapter from the ``teams:`` section of app.yaml (secrets from TEAMS_APP_PASSWORD / TEAMS_CERTIFICATE)."""
    from bot.adapters.teams.adapter import TeamsAdapter
    from bot.adapters.teams.auth import InboundAuth, auth_configuration, msal_token_provider
    from bot.storage.db import session_factory

    if not cfg.app_id:
        raise ConfigError("teams.app_id", "set TEAMS_APP_ID to the bot's Microsoft App ID")
    secret = cfg.app_password.get_secret_value() if cfg.app_password is not None else None
    if not secret and not cfg.certificate:
        raise ConfigError("teams.app_password", "set TEAMS_APP_PASSWORD (a client secret) or TEAMS_CERTIFICATE")
    config = auth_configuration(cfg.app_id, tenant_id=cfg.tenant_id, secret=secret, certificate=cfg.certificate,
                                issuers=cfg.issuers, authority=cfg.authority)
    web = parts.settings.web
    link_secret: str | bytes | None = cfg.link_secret.get_secret_value() if cfg.link_secret is not None else secret
    if not link_secret and cfg.certificate:
        link_secret = _certificate_bytes(cfg.certificate)
    return TeamsAdapter(
        app_id=cfg.app_id,
        auth=InboundAuth(config, cfg.openid_metadata_url),
        tokens=msal_token_provider(config),
        factory=session_factory(parts.db),
        service_url=cfg.service_url,
        tenant_id=cfg.tenant_id,
        admins=cfg.admins,
        leads=cfg.leads,
        meeting_min_minutes=cfg.meeting_min_minutes,
        host=web.host,
        port=web.port or cfg.port,
        public_url=cfg.public_url,
        clock=parts.clock,
        link_secret=link_secret,
    )


def _certificate_bytes(path: str) -> bytes:
    """The certificate file, whose private key then keys the file links (every web process reads the same file)."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ConfigError("teams.certificate", f"cannot read {path}: {exc.strerror}") from exc
