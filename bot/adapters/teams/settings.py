"""The ``teams:`` section of app.yaml, its TEAMS_* variables and the factory, registered with the platform registry.

This module must not import the Microsoft 365 Agents SDK: app.yaml is validated where the ``teams`` extra is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from bot.platforms import PLATFORMS, PlatformParts, PlatformSpec

if TYPE_CHECKING:
    from bot.ports import Adapter

#: The Bot Connector's global endpoint, used for a channel post before any activity told us the regional one.
DEFAULT_SERVICE_URL = "https://smba.trafficmanager.net/teams/"


class TeamsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The bot's Microsoft App ID (the Entra app registration's client id); every inbound token's audience.
    app_id: str | None = None
    #: A client secret of that app registration, or ``certificate`` (a PEM/PFX file path) instead.
    app_password: SecretStr | None = None
    certificate: str | None = None
    #: The Entra tenant of a single-tenant bot (omit for a multi-tenant registration).
    tenant_id: str | None = None
    #: Where proactive posts go before any activity named a regional service URL; tests point it at a fake.
    service_url: str | None = None
    #: The OpenID metadata whose ``jwks_uri`` holds the signing keys of inbound tokens. Unset, the SDK uses the
    #: Bot Framework's own keys; tests point it at a local issuer.
    openid_metadata_url: str | None = None
    #: The Entra authority MSAL asks for the bot's app tokens; unset, ``https://login.microsoftonline.com/<tenant>``.
    #: Set it for a national cloud (``https://login.microsoftonline.us/<tenant>``).
    authority: str | None = None
    #: Token issuers accepted on inbound activities (the Bot Framework's by default).
    issuers: list[str] = Field(default_factory=lambda: ["https://api.botframework.com"])
    #: The port of the standalone endpoint (``/api/messages``); also the HTTP tier's when ``web.port`` is unset.
    port: int = Field(default=3978, ge=1, le=65535)
    #: Admins and global leads by Entra object id or UPN (``ana@contoso.com``); cohort leads are set per cohort.
    admins: list[str] = Field(default_factory=list)
    leads: list[str] = Field(default_factory=list)
    #: Minutes in a meeting that count as attending when the session's step sets no ``checkin.min_minutes`` (a
    #: step's own minimum wins), as ``discord.voice_min_minutes`` does for voice.
    meeting_min_minutes: float = Field(default=10, ge=0)
    #: Public base URL of ``blendwise run`` (``https://learn.example.com``): the manifest's valid domain and the
    #: address of calendar-invite links.
    public_url: str | None = None
    #: Signs the links to calendar invites, so any web process serves them after any restart. Unset, the client
    #: secret (``app_password``) or else the certificate file signs them; set it to rotate links independently.
    link_secret: SecretStr | None = None


def _build(section: TeamsSettings, parts: PlatformParts) -> Adapter:
    from bot.adapters.teams import build_teams_adapter

    return build_teams_adapter(section, parts)


SPEC = PLATFORMS.register(
    PlatformSpec(
        name="teams",
        settings_model=TeamsSettings,
        factory=_build,
        env={
            "app_id": "TEAMS_APP_ID",
            "app_password": "TEAMS_APP_PASSWORD",
            "certificate": "TEAMS_CERTIFICATE",
            "tenant_id": "TEAMS_TENANT_ID",
            "service_url": "TEAMS_SERVICE_URL",
            "openid_metadata_url": "TEAMS_OPENID_METADATA_URL",
            "link_secret": "TEAMS_LINK_SECRET",
            "authority": "TEAMS_AUTHORITY",
        },
        owner=__name__,
        cli="bot.adapters.teams.cli",
    )
)
