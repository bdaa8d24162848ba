"""The Slack app manifest that ``blendwise slack manifest`` prints.

The manifest lives next to this module as YAML (with its instructions as comments) so that it can be read and
diffed as the file an admin pastes into Slack. :data:`BOT_SCOPES` is what the OAuth install flow requests; a test
keeps the two in step.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import yaml

PLACEHOLDER_HOST = "YOUR-HOST"

BOT_SCOPES: tuple[str, ...] = (
    "chat:write",
    "im:write",
    "im:history",
    "channels:history",
    "groups:history",
    "users:read",
    "users:read.email",
    "files:write",
    "files:read",
    "commands",
    "channels:read",
)

BOT_EVENTS: tuple[str, ...] = ("app_home_opened", "file_shared", "message.channels", "message.groups", "message.im")

_HOST_RE = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$")


def manifest_text(host: str | None = None, *, socket_mode: bool = False) -> str:
    """The manifest as YAML text.

    Args:
        host: the public host (``bot.example.com``) that serves ``/slack/events``; the placeholder stays if omitted.
        socket_mode: mark the app for Socket Mode (no public URL needed; run with ``SLACK_APP_TOKEN``).
    """
    text = resources.files("bot.adapters.slack").joinpath("manifest.yaml").read_text(encoding="utf-8")
    if host is not None:
        host = host.strip().removeprefix("https://").removeprefix("http://").rstrip("/")
        if not _HOST_RE.match(host):
            raise ValueError(f"'{host}' is not a host name (expected something like bot.example.com)")
        text = text.replace(PLACEHOLDER_HOST, host)
    if socket_mode:
        text = text.replace("socket_mode_enabled: false", "socket_mode_enabled: true")
    return text


def manifest(host: str | None = None, *, socket_mode: bool = False) -> dict[str, Any]:
    """The manifest parsed, for checks and tests."""
    data = yaml.safe_load(manifest_text(host, socket_mode=socket_mode))
    if not isinstance(data, dict):
        raise ValueError("manifest.yaml is not a mapping")
    return data
