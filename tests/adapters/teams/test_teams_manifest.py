"""``blendwise teams manifest``: a Teams app package (schema 1.17) with the bot in the personal and team scopes,
the core's commands, the valid domain and two icons of the sizes Teams requires."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest

from bot.adapters.teams.manifest import package
from bot.ports import Subcommand
from tests.conftest import CONTENT
from tests.fakes.teams_connector import APP_ID

pytestmark = pytest.mark.teams
BIN = Path(__file__).resolve().parents[3] / ".venv" / "bin" / "blendwise"


def _size(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return struct.unpack(">II", png[16:24])  # type: ignore[return-value]


def test_the_package_holds_a_manifest_and_both_icons() -> None:
    subs = [Subcommand(f"cmd{i}", f"does {i}", "") for i in range(14)] + [Subcommand("progress", "Your progress", "")]
    with zipfile.ZipFile(io.BytesIO(package(APP_ID, "https://learn.example.com", subs))) as archive:
        assert sorted(archive.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(archive.read("manifest.json"))
        assert _size(archive.read("color.png")) == (192, 192) and _size(archive.read("outline.png")) == (32, 32)
    assert manifest["manifestVersion"] == "1.17" and manifest["id"] == APP_ID
    (bot,) = manifest["bots"]
    assert bot["botId"] == APP_ID and {"personal", "team"} <= set(bot["scopes"])
    commands = bot["commandLists"][0]["commands"]
    assert len(commands) == 10 and commands[0] == {"title": "progress", "description": "Your progress"}
    assert manifest["validDomains"] == ["learn.example.com"]


def test_the_command_writes_the_zip_and_refuses_a_missing_app_id_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "app.yaml"
    config.write_text(f"database_url: sqlite:///{tmp_path / 'b.db'}\ncontent_dir: {CONTENT}\n", encoding="utf-8")
    done = subprocess.run([str(BIN), "--config", str(config), "teams", "manifest", "--output", str(tmp_path / "a.zip"),
                           "--app-id", APP_ID, "--public-url", "https://learn.example.com"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert zipfile.is_zipfile(tmp_path / "a.zip")
    refused = subprocess.run([str(BIN), "--config", str(config), "teams", "manifest"],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "teams.app_id" in refused.stderr and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
