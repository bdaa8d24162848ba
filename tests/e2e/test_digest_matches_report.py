"""The manager digest and the unified report say the same thing about the same person on the same day.

Issue 11, point 6: the digest used to count a watched recording (catch-up) as attendance and had its own "behind"
rule, so Chen Wei's digest said "sessions 2/2 (1 missed)" while the report said 1/2 with 1 missed (+1 caught up).
The demo's cohort (seed 7) has both a caught-up and a plainly missed session, so it exercises exactly that.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.demo import run_demo
from bot.nudges.digests import digest_message
from bot.reporting import Filters, build_report
from bot.storage.models import Person

CONTENT = Path(__file__).resolve().parents[2] / "content"

LINE = re.compile(
    r"^- \*\*(?P<name>.+?)\*\* · (?P<program>.+?): (?P<done>\d+)/(?P<total>\d+) steps"
    r"(?:, quiz avg (?P<quiz>\d+)%)?"
    r", sessions (?P<attended>\d+)/(?P<sessions>\d+)"
    r"(?: \((?P<missed>\d+) missed(?:, (?P<caught_up>\d+) caught up)?\))?"
    r"(?:, \*\*(?P<overdue>\d+) overdue\*\*)?"
    r" · (?P<status>.+)$"
)


@pytest.mark.slow
def test_every_digest_line_matches_the_report_row_for_that_person(tmp_path):
    result = run_demo(
        program_id="new-manager-onboarding",
        learners=12,
        seed=7,
        database_url=f"sqlite:///{tmp_path / 'demo.db'}",
        content_dir=CONTENT,
    )
    rt = result.runtime
    compared = 0
    with rt.factory() as session:
        report = build_report(session, rt.engine, Filters())
        rows = {r.name: r for r in report.learners}
        # Without a catch-up and a plain miss in the run, this test would prove nothing.
        assert any(r.sessions_caught_up for r in report.learners)
        assert any(r.sessions_missed > r.sessions_caught_up for r in report.learners)
        for manager_id in result.manager_ids:
            manager = session.query(Person).filter_by(user_id=manager_id).one()
            body = digest_message(session, rt.engine, manager).body
            lines = [line for line in body.splitlines() if line.startswith("- ")]
            mine = [r for r in report.learners if r.manager == manager.name]
            assert len(lines) == len(mine) > 0
            for line in lines:
                m = LINE.match(line)
                assert m, line
                row = rows[m["name"]]
                said = {
                    "program": m["program"],
                    "done": int(m["done"]),
                    "total": int(m["total"]),
                    "quiz": None if m["quiz"] is None else int(m["quiz"]),
                    "attended": int(m["attended"]),
                    "sessions": int(m["sessions"]),
                    "missed": int(m["missed"] or 0),
                    "caught_up": int(m["caught_up"] or 0),
                    "overdue": int(m["overdue"] or 0),
                    "status": m["status"],
                }
                assert said == {
                    "program": row.program,
                    "done": row.steps_completed,
                    "total": row.steps_total,
                    "quiz": None if row.quiz_average is None else int(f"{row.quiz_average:.0f}"),
                    "attended": row.sessions_attended,
                    "sessions": row.sessions_total,
                    "missed": row.sessions_missed,
                    "caught_up": row.sessions_caught_up,
                    "overdue": row.overdue,
                    "status": row.status,
                }, line
                compared += 1
    assert compared == len(report.learners) == 12
