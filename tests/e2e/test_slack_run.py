"""Acceptance for the Slack adapter: ``blendwise run`` in HTTP mode, as a separate process, pointed at a fake Slack
by SLACK_API_URL. It must deliver due lessons as DMs, record a signed quiz answer once even when Slack replays it
with retry headers, and reject unsigned requests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from bot.storage.models import QuizAnswer
from tests.contract.drivers import SlackDriver, wait_until
from tests.fakes import slack_signing
from tests.fakes.slack_api import FakeSlack

pytestmark = [pytest.mark.slack, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """\
id: mini
title: Mini program
steps:
  - id: hello
    kind: lesson
    title: Hello
    body: "A short lesson about asking one more question before giving advice."
  - id: check
    kind: quiz
    title: Quick check
    questions:
      - id: q1
        text: What comes first?
        options:
          - text: A question
            correct: true
          - text: Advice
            feedback: Advice can wait a moment.
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as f:
        f.add_user("U0LEARN1", "Ana Silva", tz="Europe/London")
        yield f


def blendwise(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_blendwise_run_http_mode_against_fake_slack(tmp_path: Path, fake: FakeSlack) -> None:
    (tmp_path / "content" / "mini").mkdir(parents=True)
    (tmp_path / "content" / "mini" / "program.yaml").write_text(PROGRAM)
    port = free_port()
    (tmp_path / "app.yaml").write_text(
        textwrap.dedent(
            f"""\
            database_url: sqlite:///{tmp_path / "run.db"}
            content_dir: content
            platforms: [slack]
            working_hours: {{start: "00:00", end: "23:59", days: [mon, tue, wed, thu, fri, sat, sun]}}
            quiet_hours: null
            sender: {{tick_seconds: 0.5}}
            slack:
              port: {port}
              per_channel_interval: 0
            """
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SLACK_API_URL": fake.api_url,
        "SLACK_BOT_TOKEN": fake.token,
        "SLACK_SIGNING_SECRET": slack_signing.SIGNING_SECRET,
        "BLENDWISE_CONFIG": str(tmp_path / "app.yaml"),
    }
    env.pop("BLENDWISE_DATABASE_URL", None)
    start = (date.today() - timedelta(days=1)).isoformat()
    for args in (
        ("db", "upgrade"),
        ("cohort", "create", "pilot", "--program", "mini", "--start", start, "--platform", "slack",
         "--workspace", fake.team_id, "--channel", "C0PILOT01", "--tz", "UTC"),
        ("cohort", "enroll", "pilot", "U0LEARN1", "--create"),
    ):
        done = blendwise(*args, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr

    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )
    try:
        # 1. Due lessons arrive as DMs.
        wait_until(lambda: len(fake.messages_to("U0LEARN1")) >= 2, timeout=30, what="lesson and quiz DMs")
        inbox = [SlackDriver._msg(fake.dm_channel("U0LEARN1") or "", m) for m in fake.messages_to("U0LEARN1")]
        assert any(m.button("lesson.done") for m in inbox)
        quiz = next(m for m in inbox if m.button("quiz.answer"))
        right = next(b for b in quiz.buttons if b.action == "quiz.answer" and b.value.endswith(".0"))

        url = f"http://127.0.0.1:{port}/slack/events"
        # 2. Unsigned requests are refused.
        unsigned = slack_signing.sign("wrong-secret", "payload=%7B%7D", "application/x-www-form-urlencoded")
        assert slack_signing.post(url, unsigned).status == 401

        # 3. A signed quiz answer, then the same request replayed with Slack's retry headers: recorded once.
        channel, ts = quiz.ref
        payload = slack_signing.block_actions_payload(
            user_id="U0LEARN1", action_id=right.raw[0], value=right.raw[1], team_id=fake.team_id,
            channel_id=channel, message_ts=ts, response_url=fake.response_url("quiz"),
        )
        request = slack_signing.interaction_request(slack_signing.SIGNING_SECRET, payload)
        assert slack_signing.post(url, request).status == 200
        replay = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
        assert slack_signing.post(url, request, headers=replay).status == 200
        wait_until(lambda: bool(fake.calls("chat.update")), timeout=15, what="the quiz card updated in place")
        time.sleep(0.5)  # let a wrongly accepted replay show itself before counting (bounded, not a sync point)
        db = create_engine(f"sqlite:///{tmp_path / 'run.db'}")
        with db.connect() as conn:
            answers = conn.execute(select(func.count()).select_from(QuizAnswer)).scalar()
        db.dispose()
        assert answers == 1
        assert len(fake.calls("chat.update")) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out
    assert "Traceback" not in out
