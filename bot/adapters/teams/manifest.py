"""The Teams app package: ``manifest.json`` (schema 1.17) and its two icons, zipped, ready to upload.

It declares the bot in the ``personal`` and ``team`` scopes (and ``groupChat``, which a meeting's chat is, so the
app can be added to a meeting and receive participant events), the commands people see in the compose box, and the
valid domain of ``blendwise run``. The icons are drawn here (a 192 px colour icon and a 32 px white-on-transparent
outline, as Teams requires), so the package needs no image files or libraries.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlparse

from bot.ports import Subcommand

SCHEMA = "https://developer.microsoft.com/en-us/json-schemas/teams/v1.17/MicrosoftTeams.schema.json"
ACCENT = (0x4B, 0x53, 0xBC)
#: Teams shows at most 10 commands per scope, titles up to 32 characters, descriptions up to 128.
MAX_COMMANDS = 10
LEARNER_FIRST = ("progress", "next", "snooze", "pause", "resume", "help", "team", "search", "prompt", "announce")


def _png(size: int, pixel: Callable[[int, int], tuple[int, int, int, int]]) -> bytes:
    rows = b"".join(b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(size)) for y in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def _mark(x: float, y: float) -> bool:
    """A simple open-book mark on the unit square: two pages and a spine."""
    left = 0.18 <= x <= 0.48 and 0.25 <= y <= 0.75
    right = 0.52 <= x <= 0.82 and 0.25 <= y <= 0.75
    return left or right


def color_icon() -> bytes:
    return _png(192, lambda x, y: (255, 255, 255, 255) if _mark(x / 192, y / 192) else (*ACCENT, 255))


def outline_icon() -> bytes:
    return _png(32, lambda x, y: (255, 255, 255, 255) if _mark(x / 32, y / 32) else (0, 0, 0, 0))


def commands(subcommands: Sequence[Subcommand]) -> list[dict[str, str]]:
    """The compose box's command list: learners' commands first, as many as Teams shows."""
    by_name = {s.name: s for s in subcommands}
    ordered = [by_name[n] for n in LEARNER_FIRST if n in by_name]
    ordered += [s for s in subcommands if s not in ordered]
    return [{"title": s.name[:32], "description": s.summary[:128]} for s in ordered[:MAX_COMMANDS]]


def manifest(app_id: str, public_url: str, subcommands: Sequence[Subcommand], version: str = "1.0.0") -> dict[str, Any]:
    domain = urlparse(public_url).hostname or public_url
    listed = commands(subcommands)
    return {
        "$schema": SCHEMA,
        "manifestVersion": "1.17",
        "version": version,
        "id": app_id,
        "developer": {
            "name": "Blendwise",
            "websiteUrl": public_url,
            "privacyUrl": public_url,
            "termsOfUseUrl": public_url,
        },
        "name": {"short": "Blendwise", "full": "Blendwise blended learning"},
        "description": {
            "short": "Micro-lessons, quizzes and live sessions in Teams.",
            "full": "Blendwise runs blended learning programs in Teams: micro-lessons, quizzes and reflections in "
            "your personal chat, cohort discussions in your team's channel, live sessions with reminders and "
            "attendance, and one report for completion and attendance.",
        },
        "icons": {"color": "color.png", "outline": "outline.png"},
        "accentColor": "#{:02X}{:02X}{:02X}".format(*ACCENT),
        "bots": [{
            "botId": app_id,
            "scopes": ["personal", "team", "groupChat"],
            "supportsFiles": False,
            "isNotificationOnly": False,
            "commandLists": [{"scopes": ["personal", "team"], "commands": listed}],
        }],
        "permissions": ["identity", "messageTeamMembers"],
        "validDomains": [domain],
        "authorization": {"permissions": {"resourceSpecific": [
            {"name": "OnlineMeetingParticipant.Read.Chat", "type": "Application"},
            {"name": "ChannelMeeting.ReadBasic.Group", "type": "Application"},
        ]}},
    }


def package(app_id: str, public_url: str, subcommands: Sequence[Subcommand]) -> bytes:
    """The zipped app package: manifest.json, color.png, outline.png at the root."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest(app_id, public_url, subcommands), indent=2))
        archive.writestr("color.png", color_icon())
        archive.writestr("outline.png", outline_icon())
    return buffer.getvalue()
