"""``blendwise session move|cancel``: real subprocesses against a temporary app.yaml and database. The cohort starts
in 2030 so its sessions are ahead of the real clock the CLI runs on."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from bot.storage.db import make_engine
from bot.storage.models import LiveSessionRow
from tests.unit.test_cli import run, workdir  # noqa: F401  (the fixture)

pytestmark = pytest.mark.timeout(600)  # seven CLI start-ups on a loaded machine


def test_move_and_cancel_from_the_command_line(workdir: Path, db_url: str) -> None:  # noqa: F811
    created = run(workdir, "cohort", "create", "winter", "--program", "feedback-fundamentals", "--start", "2030-01-07")
    assert created.returncode == 0, created.stdout + created.stderr

    moved = run(workdir, "session", "move", "winter", "feedback-workshop", "--to", "2030-01-20 15:00")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert moved.stdout.strip().startswith("'Live workshop - feedback in practice' now starts Sun 20 Jan 2030, 15:00 GMT")

    zoned = run(workdir, "session", "move", "winter", "feedback-workshop", "--to", "2030-01-21 10:00",
                "--tz", "America/New_York")
    assert zoned.returncode == 0 and "Mon 21 Jan 2030, 10:00 EST" in zoned.stdout

    bad = run(workdir, "session", "move", "winter", "feedback-workshop", "--to", "next tuesday")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "error: 'next tuesday' is not a date and time; write it as YYYY-MM-DD HH:MM, e.g. 2026-03-12 15:00."
    ]
    unknown = run(workdir, "session", "cancel", "spring", "feedback-workshop")
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr and "no cohort 'spring'" in unknown.stderr

    cancelled = run(workdir, "session", "cancel", "winter", "feedback-workshop")
    assert cancelled.returncode == 0 and "is cancelled" in cancelled.stdout
    again = run(workdir, "session", "cancel", "winter", "feedback-workshop")
    assert again.returncode == 1 and "was cancelled" in again.stderr

    engine = make_engine(db_url)
    with engine.connect() as conn:
        row = conn.execute(select(LiveSessionRow.start_at, LiveSessionRow.sequence, LiveSessionRow.cancelled_at)).one()
    engine.dispose()
    assert row.sequence == 3 and row.cancelled_at is not None
    assert row.start_at.isoformat() == "2030-01-21T15:00:00+00:00"
