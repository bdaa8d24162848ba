"""Pointing discord.py at another Discord (the fake server in tests, or a proxy).

discord.py has no per-client base URL: every REST route is built from the class attribute ``Route.BASE`` (webhook
and interaction-callback routes too), and the gateway is ``DiscordWebSocket.DEFAULT_GATEWAY`` (discord.py 2.x
connects there directly instead of asking ``GET /gateway``, and falls back to it after an invalidated session).
Both are process-wide, so this is done once, before a client starts, in one place.
"""

from __future__ import annotations

import logging

import discord.gateway
import discord.http
import yarl

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://discord.com/api/v10"
DEFAULT_GATEWAY_URL = "wss://gateway.discord.gg/"


def configure_endpoints(api_url: str | None = None, gateway_url: str | None = None) -> None:
    """Point discord.py's REST base and gateway at ``api_url`` / ``gateway_url`` (``None``: Discord's own).

    Args:
        api_url: ``DISCORD_API_URL``, the REST base including the version, e.g. ``http://127.0.0.1:8080/api/v10``.
        gateway_url: ``DISCORD_GATEWAY_URL``, e.g. ``ws://127.0.0.1:8080/ws``. discord.py adds ``v``, ``encoding`` and
            ``compress`` to the query itself.

    RESUME: discord.py reconnects to the ``resume_gateway_url`` of the READY payload (``DiscordWebSocket.gateway``),
    not to ``DEFAULT_GATEWAY``. That is what Discord requires, and it means a server standing in for Discord must
    hand out a ``resume_gateway_url`` pointing back to itself (the fake does). Nothing here can override it without
    breaking resumes against the real gateway, so this function deliberately leaves it alone.

    This changes process-wide class attributes: every discord.py client in the process uses the same endpoints.
    """
    base = (api_url or DEFAULT_API_URL).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"DISCORD_API_URL must be an http(s) URL, got {base!r}")
    gateway = yarl.URL(gateway_url or DEFAULT_GATEWAY_URL)
    if gateway.scheme not in ("ws", "wss"):
        raise ValueError(f"DISCORD_GATEWAY_URL must be a ws(s) URL, got {str(gateway)!r}")
    discord.http.Route.BASE = base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway
    if api_url or gateway_url:
        logger.info("discord endpoints: REST %s, gateway %s", base, gateway)
