"""The HTML report in headless Chromium: it loads, renders a screenshot and logs no console errors."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from bot.reporting import Filters, build_report
from bot.reporting.html import render_html
from tests.unit.test_report import drive_cohort

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium missing: apt-get install chromium"),
]

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
]


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_report_renders_in_headless_chromium_without_console_errors(rt, clock, console, tmp_path):
    drive_cohort(rt, clock, console)
    with rt.factory() as session:
        html = render_html(session, rt.engine, build_report(session, rt.engine, Filters()))
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    shot = tmp_path / "report.png"

    run = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    assert shot.exists(), run.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1280, 2000)
    assert len(png) > 50_000  # a page with charts and a table, not a blank or an error page
    console_errors = [
        line
        for line in run.stderr.splitlines()
        if "CONSOLE" in line.upper() and ("ERROR" in line or "Uncaught" in line)
    ]
    assert console_errors == []

    dom = _chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Learning report" in dom.stdout and dom.stdout.count("<svg") >= 3
    assert "Uncaught" not in dom.stderr
    keep = Path(__file__).resolve().parents[2] / ".pytest_cache" / "report-screenshot.png"
    keep.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, keep)  # for a human look after the run
