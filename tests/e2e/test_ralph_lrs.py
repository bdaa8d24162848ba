"""A whole demo cohort's statements, accepted and read back by a real LRS: openfun's Ralph.

Ralph runs from its own virtual environment (its pins differ from ours), cached under
``~/.cache/blendwise-ralph-venv`` so that only the first run installs it. The test is skipped, with the reason,
when Ralph cannot be installed (no route to PyPI).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.config import LRSSettings
from bot.demo import run_demo
from bot.records.lrs import LRSClient, forward_pending
from bot.records.models import RecordsCursor
from bot.records.xapi import validate_statement
from bot.storage.db import transaction
from bot.storage.models import LearningEvent
from tests.conftest import CONTENT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

VENV = Path(os.environ.get("BLENDWISE_RALPH_VENV", Path.home() / ".cache" / "blendwise-ralph-venv"))
USER, PASSWORD = "blendwise", "ralph-test-password"


def _ralph() -> Path:
    exe = VENV / "bin" / "ralph"
    if exe.exists():
        return exe
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=120
        )
        subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "-q", "ralph-malph[cli,lrs]", "requests"],
            check=True,
            capture_output=True,
            timeout=600,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(VENV, ignore_errors=True)
        stderr = getattr(exc, "stderr", b"") or b""
        pytest.skip(
            f"Ralph LRS could not be installed (no access to PyPI?): {stderr.decode(errors='replace')[-300:]}"
        )
    return exe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ralph(tmp_path: Path) -> Iterator[str]:
    exe = _ralph()
    app_dir, data_dir = tmp_path / "ralph-app", tmp_path / "ralph-data"
    app_dir.mkdir()
    data_dir.mkdir()
    env = {
        **os.environ,
        "RALPH_APP_DIR": str(app_dir),
        "RALPH_RUNSERVER_BACKEND": "fs",
        "RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH": str(data_dir),
        "RALPH_BACKENDS__DATA__FS__DEFAULT_DIRECTORY_PATH": str(data_dir),
    }
    subprocess.run(
        [str(exe), "auth", "-u", USER, "-p", PASSWORD, "-s", "all", "-M", "mailto:x@example.com", "-w"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
        cwd=tmp_path,
    )
    port = _free_port()
    log = (tmp_path / "ralph.log").open("wb")
    # Its own session, so the whole process group (runserver forks a reloader and a worker) is stopped at the end.
    proc = subprocess.Popen(
        [
            str(exe),
            "runserver",
            "-b",
            "fs",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "--fs-default-directory-path",
            str(data_dir),
        ],
        env=env,
        cwd=data_dir,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/__heartbeat__", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"Ralph did not start: {(tmp_path / 'ralph.log').read_text(errors='replace')[-800:]}"
                )
            time.sleep(0.3)
        yield f"{url}/xAPI"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()


def _read_back(endpoint: str) -> list[dict]:
    """Every statement, following Ralph's ``more`` links."""
    token = b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    base = endpoint.rsplit("/xAPI", 1)[0]
    url, out = f"{endpoint}/statements?limit=500", []
    while url:
        req = urllib.request.Request(
            url, headers={"Authorization": f"Basic {token}", "X-Experience-API-Version": "1.0.3"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            page = json.loads(resp.read())
        out += page["statements"]
        url = f"{base}{page['more']}" if page.get("more") and page["statements"] else None
    return out


def test_demo_cohort_statements_are_accepted_by_ralph(ralph, tmp_path):
    result = run_demo(
        program_id="feedback-fundamentals",
        learners=4,
        seed=3,
        database_url=f"sqlite:///{tmp_path / 'demo.db'}",
        content_dir=CONTENT,
    )
    rt = result.runtime
    # Ralph's file-system backend stores one write per file: the whole cohort goes in one batch (it is ~100
    # statements). A production Ralph (Elasticsearch, MongoDB, ClickHouse) takes any number of batches.
    settings = LRSSettings.model_validate(
        {"endpoint": ralph, "username": USER, "password": PASSWORD, "batch": 1000}
    )
    with rt.factory() as session:
        total = session.scalar(select(func.count()).select_from(LearningEvent))
    assert 0 < total <= 1000
    sent = forward_pending(rt.factory, rt.library, settings, datetime.now(UTC), sleep=lambda s: None)
    assert (sent.error, sent.sent) == (None, total)
    stored = _read_back(ralph)
    assert len(stored) == total
    from bot.records.xapi import export_statements

    with rt.factory() as session:
        ours = {s["id"]: s for s in export_statements(session, rt.library, settings)}
    assert {s["id"] for s in stored} == set(ours)
    for st in stored:
        assert validate_statement(st) == []
        assert st["verb"]["id"] == ours[st["id"]]["verb"]["id"]
    # Re-sending everything (a crash after the POST, before the cursor moved) stores nothing twice.
    with transaction(rt.factory) as session:
        session.get(RecordsCursor, "lrs").position = 0
    again = forward_pending(rt.factory, rt.library, settings, datetime.now(UTC), sleep=lambda s: None)
    assert again.error is None
    assert len(_read_back(ralph)) == total
    # Single-statement reads by id work too (Ralph wraps them in a statement result).
    first = next(iter(ours))
    one = LRSClient(settings).get_statements(statementId=first)
    assert [s["id"] for s in one.get("statements", [one])] == [first]
    rt.db.dispose()
