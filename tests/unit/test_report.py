"""The unified report on a small hand-driven cohort: numbers, CSV, JSON and HTML (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.reporting import CSV_COLUMNS, Filters, build_report
from bot.reporting.html import render_html
from bot.storage.db import transaction
from bot.storage.models import Person
from tests.conftest import make_cohort

PROGRAM = "feedback-fundamentals"


def at(clock, day: int, hour: int, minute: int = 0) -> None:
    """Move the virtual clock to 2 March 2026 + ``day``, hour:minute UTC (London is UTC until 29 March)."""
    clock.set(datetime(2026, 3, 2 + day, hour, minute, tzinfo=UTC))


def press(console, user: str, action: str) -> None:
    found = console.last_with_button(user, action)
    assert found is not None, f"{user} has no {action} button"
    console.press(user, *found)


def take_quiz(
    rt, console, user: str, wrong: set[int], *, program: str = PROGRAM, quiz: str = "feedback-check"
) -> None:
    """Answer the quiz card through its buttons; questions in ``wrong`` get a wrong option."""
    step = rt.library.step(program, quiz)
    for qi, question in enumerate(step.questions):
        sent, _ = console.last_with_button(user, "quiz.submit") or console.last_with_button(
            user, "quiz.answer"
        )
        right = [i for i, o in enumerate(question.options) if o.correct]
        choice = [next(i for i in range(len(question.options)) if i not in right)] if qi in wrong else right
        if question.multiple:
            for b in [b for b in sent.message.buttons if b.action == "quiz.toggle"]:
                if int(b.value.split(".")[-1]) in choice:
                    console.press(user, sent, b)
            sent, submit = console.last_with_button(user, "quiz.submit")
            console.press(user, sent, submit)
        else:
            button = next(
                b
                for b in sent.message.buttons
                if b.action == "quiz.answer" and b.value.endswith(f".{choice[0]}")
            )
            console.press(user, sent, button)


def drive_cohort(rt, clock, console) -> None:
    """ana does everything on time, attends and replies; bo never acts."""
    make_cohort(rt, PROGRAM, [("ana", "Europe/London"), ("bo", "Europe/London")], manager="boss")
    at(clock, 0, 10)
    rt.step()
    press(console, "ana", "lesson.done")  # why-feedback-matters, Monday
    at(clock, 1, 10)
    rt.step()
    press(console, "ana", "lesson.done")  # sbi-model, Tuesday
    at(clock, 4, 10)  # Friday: the quiz (after sbi-model) and the Thursday lesson are out
    rt.step()
    press(console, "ana", "lesson.done")  # receiving-feedback, out since Thursday
    take_quiz(rt, console, "ana", wrong={0})  # 3 of 4 right: 75%, exactly the pass mark
    at(clock, 7, 10)  # Monday 9 March: ana answers the day-4 prompt (out since Friday)
    rt.step()
    posts = [
        p
        for p in console.channel_posts("cohort-1")
        if p.thread is None and "situation" in p.message.title.lower()
    ]
    assert posts, [p.message.title for p in console.channel_posts("cohort-1")]
    console.reply_in_thread("ana", posts[-1], "My situation: a peer who interrupts in stand-ups.")
    at(clock, 7, 13, 55)  # Monday 9 March, the workshop starts at 14:00
    rt.step()
    press(console, "ana", "session.checkin")
    at(clock, 8, 10)  # the day after: the session has closed, bo missed it
    rt.step()


def _row(report, user_id):
    return next(r for r in report.learners if r.user_id == user_id)


def test_report_numbers_match_hand_computed_values(rt, clock, console):
    drive_cohort(rt, clock, console)
    with rt.factory() as session:
        report = build_report(session, rt.engine, Filters())
    ana, bo = _row(report, "ana"), _row(report, "bo")
    # ana: three lessons, the quiz, the prompt (completed by her thread reply) and the workshop; of 8 authored steps
    # and the 3 polls of the end-of-program evaluation.
    assert (ana.steps_completed, ana.steps_total) == (6, 11)
    # The prompt reached her on Friday 6 March and is due two working days later, on Tuesday (issue 14: due runs
    # from the delivery in working days, the weekend does not count); she replied on Monday, on time.
    assert ana.on_time == 6
    assert ana.quiz_average == 75.0 and (ana.quizzes_passed, ana.quizzes_total) == (1, 1)
    assert (ana.sessions_attended, ana.sessions_missed, ana.sessions_caught_up, ana.sessions_total) == (
        1,
        0,
        0,
        1,
    )
    assert ana.replies == 1
    assert ana.retention is None  # no spaced-recall answers yet
    assert ana.manager == "Morgan Manager"
    assert ana.last_activity.startswith("2026-03-09T13:55")
    # Left for ana: the reflection (unlocked today, due in three days) and the day-10 prompt: on track.
    assert ana.status == "on track"
    # bo: nothing done. Overdue on Tue 10 March 10:00 UTC: why-feedback-matters (due Wed 4th) and sbi-model (Thu
    # 5th). receiving-feedback and bring-a-situation reached him on Friday at 10:00 (this cohort is ticked once a
    # day) and are due two working days later, Tuesday 10:00: not overdue yet. The quiz never unlocked for him.
    assert (bo.steps_completed, bo.on_time, bo.quiz_average, bo.replies) == (0, 0, None, 0)
    assert bo.overdue == 2
    assert (bo.sessions_attended, bo.sessions_missed) == (0, 1)
    # Behind, but three ignored nudges auto-paused him (nudges.auto_pause_after = 3), and paused wins.
    assert bo.status == "paused"
    (cohort,) = report.cohorts
    assert (cohort.learners, cohort.completed, cohort.completion_rate) == (2, 0, 0.0)
    assert cohort.attendance_rate == 50.0
    funnel = dict(cohort.funnel)
    step_titles = {s.id: s.title for s in rt.library.program(PROGRAM).steps}
    assert funnel[step_titles["why-feedback-matters"]] == 1
    assert funnel[step_titles["feedback-check"]] == 1
    assert funnel[step_titles["feedback-workshop"]] == 1
    assert funnel[step_titles["workshop-reflection"]] == 0
    (live,) = cohort.sessions
    assert (live["invited"], live["rsvp_yes"], live["attended"], live["rate"]) == (2, 0, 1, 50.0)
    # Active learners per week (weeks start on Monday): only ana ever acted, in both weeks.
    assert cohort.weekly_active == [("2026-03-02", 1), ("2026-03-09", 1)]


def test_report_cuts_by_manager_person_and_cohort(rt, clock, console):
    drive_cohort(rt, clock, console)
    with transaction(rt.factory) as session:
        other = rt.engine.person(session, "console", "console", "zed", name="Zed Other")
        cohort = rt.engine.cohort_by_name(session, "console", "c1")
        rt.engine.enroll(session, cohort, other)
    with rt.factory() as session:
        everyone = build_report(session, rt.engine, Filters())
        team = build_report(session, rt.engine, Filters(manager="boss"))
        one = build_report(session, rt.engine, Filters(person="Ana"))
        none = build_report(session, rt.engine, Filters(cohort="no-such-cohort"))
    assert {r.user_id for r in everyone.learners} == {"ana", "bo", "zed"}
    assert {r.user_id for r in team.learners} == {"ana", "bo"}
    assert [r.user_id for r in one.learners] == ["ana"]
    assert none.learners == [] and none.cohorts == []


def test_csv_header_is_the_contract_and_json_has_the_documented_shape(rt, clock, console):
    drive_cohort(rt, clock, console)
    with rt.factory() as session:
        report = build_report(session, rt.engine, Filters())
    rows = list(csv.reader(io.StringIO(report.to_csv())))
    assert rows[0] == CSV_COLUMNS
    assert len(rows) == 1 + len(report.learners)
    by_user = {r[CSV_COLUMNS.index("user_id")]: dict(zip(CSV_COLUMNS, r, strict=True)) for r in rows[1:]}
    assert by_user["ana"]["quiz_average"] == "75.0"
    assert by_user["bo"]["quiz_average"] == ""  # unknown is empty, never 0
    data = json.loads(report.to_json())
    assert set(data) == {"generated_at", "learners", "cohorts"}
    assert list(data["learners"][0]) == CSV_COLUMNS
    assert {
        "cohort",
        "program",
        "learners",
        "completed",
        "completion_rate",
        "attendance_rate",
        "funnel",
        "sessions",
        "weekly_active",
        "evaluation",
    } <= set(data["cohorts"][0])
    # Nobody has reached the evaluation yet: every question is listed with no answers.
    assert [(q["level"], q["responses"]) for q in data["cohorts"][0]["evaluation"]] == [(1, 0), (2, 0), (3, 0)]


def test_html_has_charts_and_escapes_learner_text(rt, clock, console):
    drive_cohort(rt, clock, console)
    evil = "<script>alert(1)</script>"
    with transaction(rt.factory) as session:
        bo = session.scalar(select(Person).where(Person.user_id == "bo"))
        bo.name = evil
        bo.email = 'x"><img src=x onerror=alert(2)>@example.com'
    with rt.factory() as session:
        report = build_report(session, rt.engine, Filters())
        html = render_html(session, rt.engine, report)
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<svg") >= 3  # funnel, attendance, weekly activity
    assert evil not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "<script" not in html.lower()  # no JavaScript at all
    # Self-contained: no external stylesheet, script, image or font.
    for needle in ("<link", "<img", "<iframe", "@import", "url(http"):
        assert needle not in html
    assert "b-behind" in html and "b-on-track" in html


def test_cli_report_html_writes_a_file(rt, clock, console, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from bot.cli import app

    drive_cohort(rt, clock, console)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "r.html"
    result = CliRunner().invoke(
        app,
        ["--database-url", rt.settings.database_url, "report", "--format", "html", "-o", str(out)],
        env={"BLENDWISE_CONTENT_DIR": str(rt.settings.content_dir)},
    )
    assert result.exit_code == 0, result.output
    assert "<svg" in out.read_text(encoding="utf-8")


def test_digest_carries_a_team_chart_scoped_to_the_manager(rt, clock, console):
    drive_cohort(rt, clock, console)
    with transaction(rt.factory) as session:
        stranger = rt.engine.person(session, "console", "console", "zed", name="Zed Elsewhere")
        other_boss = rt.engine.person(session, "console", "console", "otherboss", name="Other Boss")
        stranger.manager_id = other_boss.id
        rt.engine.enroll(session, rt.engine.cohort_by_name(session, "console", "c1"), stranger)
    clock.advance(timedelta(days=6))
    rt.plan_digests()
    rt.drain()
    digests = {s.user_id: s.message for s in console.sent if s.message.kind == "digest"}
    assert set(digests) >= {"boss", "otherboss"}
    mine = digests["boss"]
    assert "Ana" in mine.body and "Bo" in mine.body and "Zed" not in mine.body
    (chart,) = mine.attachments
    assert (chart.filename, chart.mimetype) == ("team-progress.png", "image/png")
    # Drawn only when asked for (an uploading adapter does), from the rows read when the digest was made.
    png = chart.data()
    assert png is not None and png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000
    assert chart.data() is png
    assert "Zed" in digests["otherboss"].body and "Ana" not in digests["otherboss"].body
