"""Acceptance for the Discord adapter: ``blendwise run`` as a separate process, pointed at the fake Discord by
DISCORD_API_URL / DISCORD_GATEWAY_URL. It must deliver the due lesson as a DM, and record a button-press
interaction once even when Discord delivers the same interaction twice (as a RESUME replay does)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from bot.storage.models import QuizAnswer
from tests.contract.discord_driver import DiscordDriver
from tests.contract.drivers import wait_until
from tests.fakes.discord_server import FakeDiscord

pytestmark = [pytest.mark.discord, pytest.mark.slow, pytest.mark.timeout(180)]
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


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord() as server:
        yield server


def blendwise(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def quiz_answers(db_url: str) -> int:
    db = create_engine(db_url)
    try:
        with db.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(QuizAnswer)).scalar() or 0)
    finally:
        db.dispose()


def test_blendwise_run_against_fake_discord(tmp_path: Path, fake: FakeDiscord, db_url: str) -> None:
    w = fake.world
    learner = w.learner_ids[0]
    (tmp_path / "content" / "mini").mkdir(parents=True)
    (tmp_path / "content" / "mini" / "program.yaml").write_text(PROGRAM)
    (tmp_path / "app.yaml").write_text(
        textwrap.dedent(
            f"""\
            database_url: {db_url}
            content_dir: content
            platforms: [discord]
            working_hours: {{start: "00:00", end: "23:59", days: [mon, tue, wed, thu, fri, sat, sun]}}
            quiet_hours: null
            sender: {{tick_seconds: 0.5}}
            discord:
              guild_ids: ["{w.guild_id}"]
              lead_roles: ["{w.lead_role}"]
              admin_roles: ["{w.admin_role}"]
            """
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DISCORD_TOKEN": fake.token,
        "DISCORD_API_URL": fake.api_url,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
        "BLENDWISE_CONFIG": str(tmp_path / "app.yaml"),
    }
    env.pop("BLENDWISE_DATABASE_URL", None)
    start = (date.today() - timedelta(days=1)).isoformat()
    for args in (
        ("db", "upgrade"),
        ("cohort", "create", "pilot", "--program", "mini", "--start", start, "--platform", "discord",
         "--workspace", str(w.guild_id), "--channel", str(w.text_channel_id), "--tz", "UTC"),
        ("cohort", "enroll", "pilot", str(learner), "--create"),
    ):  # fmt: skip
        done = blendwise(*args, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr

    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # 1. The due lesson and quiz arrive as DMs (embeds with persistent bw: buttons).
        def inbox() -> list[dict[str, object]]:
            channel = fake.dm_channels.get(learner)
            return fake.messages_in(channel) if channel is not None else []

        wait_until(lambda: len(inbox()) >= 2, timeout=60, what="lesson and quiz DMs")
        cards = [DiscordDriver.message(m) for m in inbox()]
        lesson = next(m for m in cards if m.button("lesson.done"))
        assert lesson.title == "Hello"
        assert "one more question" in lesson.text
        quiz = next(m for m in cards if m.button("quiz.answer"))
        right = next(b for b in quiz.buttons if b.action == "quiz.answer" and b.value.endswith(".0"))

        # 2. The quiz answer, then the very same interaction delivered again: recorded once.
        first = fake.press_button(learner, int(quiz.ref[1]), right.raw)
        assert fake.wait_for_ack(first, timeout=15)["type"] == 7  # the card is edited in place
        again = fake.press_button(learner, int(quiz.ref[1]), right.raw, interaction_id=first)
        assert again == first
        # The bot answers the replay too, and Discord refuses it (40060): wait for that second callback.
        callbacks = fake.wait_for_calls("POST", rf"/interactions/{first}/[^/]+/callback", count=2, timeout=15)
        assert [c.status for c in callbacks] == [200, 400]
        assert quiz_answers(db_url) == 1
        edited = DiscordDriver.message(fake.messages[int(quiz.ref[1])])
        assert not edited.button("quiz.answer"), "the answered card has no answer buttons left"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert fake.token not in out, "the bot token is never logged"
