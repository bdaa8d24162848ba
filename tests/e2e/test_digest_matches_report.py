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
    r"(?: \(\+(?P<na>\d+) n/a, before they joined\))?"
    r"(?:, \*\*(?P<overdue>\d+) overdue\*\*)?"
    r" · (?P<status>.+)$"
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's cohort (seed 7): it has both a caught-up and a plainly missed session."""
    return run_demo(
        program_id="new-manager-onboarding",
        learners=12,
        seed=7,
        database_url=f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}",
        content_dir=CONTENT,
    )


@pytest.mark.slow
def test_every_digest_line_matches_the_report_row_for_that_person(demo):
    result = demo
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
                    "na": int(m["na"] or 0),
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
                    "na": row.sessions_not_applicable,
                    "overdue": row.overdue,
                    "status": row.status,
                }, line
                compared += 1
    assert compared == len(report.learners) == 12


PROGRESS = re.compile(
    r"^- \*\*(?P<program>.+?)\*\* \((?P<cohort>.+?)\): (?P<done>\d+)/(?P<total>\d+) steps, "
    r"(?P<attended>\d+)/(?P<sessions>\d+) live sessions attended(?: \(\+(?P<caught_up>\d+) caught up\))?, "
    r"(?P<passed>\d+)/(?P<quizzes>\d+) quizzes passed · (?P<status>.+)$"
)


@pytest.mark.slow
def test_every_learners_progress_reply_matches_their_report_row(demo):
    """``/learn progress`` is the learner's view of the same computation: it once counted only required quizzes and
    every attendance row (a watched recording as a session attended), so a learner read other figures than their
    manager and the report."""
    from bot.events import Actor, CommandInvoked

    result = demo
    rt = result.runtime
    with rt.factory() as session:
        report = build_report(session, rt.engine, Filters())
        learners = [(p.platform, p.workspace, p.user_id, p.name) for p in session.query(Person)]
    rows = {r.name: r for r in report.learners}
    assert any(r.sessions_caught_up for r in report.learners)
    checked = 0
    for platform, workspace, user_id, name in learners:
        if name not in rows:
            continue  # managers and leads
        reply = rt.dispatcher.handle(CommandInvoked(Actor(platform, workspace, user_id), "progress"))
        m = PROGRESS.match(reply.ephemeral.body)
        assert m, reply.ephemeral.body
        row = rows[name]
        assert (int(m["done"]), int(m["total"]), int(m["attended"]), int(m["sessions"]),
                int(m["caught_up"] or 0), int(m["passed"]), int(m["quizzes"])) == (
            row.steps_completed, row.steps_total, row.sessions_attended, row.sessions_total,
            row.sessions_caught_up, row.quizzes_passed, row.quizzes_total,
        ), name
        checked += 1
    assert checked == len(report.learners) > 0
