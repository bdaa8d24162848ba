"""Manager digests: weekly at the manager's local time, scoped to their own reports, with the right numbers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.console import ConsoleAdapter
from bot.app import Runtime
from bot.clock import VirtualClock
from bot.storage.db import transaction
from tests.conftest import COHORT_START
from tests.unit.helpers import build_runtime, button, deliveries

PROGRAM = """
id: digesting
title: Digesting
tz: Europe/London
defaults:
  reminders: {enabled: false}
steps:
  - id: one
    title: Lesson one
    kind: lesson
    body: One.
    due: 1d
  - id: two
    title: Lesson two
    kind: lesson
    body: Two.
    due: 1d
  - id: check
    title: Check
    kind: quiz
    retry: {max_attempts: 1}
    questions:
      - id: only
        text: Right or wrong?
        options:
          - text: Right
            correct: true
          - text: Wrong
  - id: live
    title: Live
    kind: session
    start: {day: 1, at: "14:00"}
    duration: 1h
"""


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def rt(db_url: str, tmp_path: Path, clock: VirtualClock, console: ConsoleAdapter) -> Iterator[Runtime]:
    runtime = build_runtime(db_url, tmp_path, clock, console, {"digesting": PROGRAM})
    with transaction(runtime.factory) as session:
        e = runtime.engine
        mia = e.person(session, "console", "console", "mia", name="Mia Manager", tz="America/New_York")
        max_ = e.person(session, "console", "console", "max", name="Max Other", tz="Europe/London")
        cohort = e.create_cohort(
            session,
            name="c1",
            program_id="digesting",
            platform="console",
            workspace="console",
            start=COHORT_START,
        )
        people = {}
        for user, boss in (("ana", mia), ("bo", mia), ("zed", max_), ("kid", None)):
            p = e.person(session, "console", "console", user, name=user.title(), tz="Europe/London")
            p.manager_id = boss.id if boss else None
            people[user] = p
            e.enroll(session, cohort, p)
        people["kid"].manager_id = people["ana"].id  # kid reports to ana, so indirectly to mia
    yield runtime
    runtime.db.dispose()


def at(rt: Runtime, clock: VirtualClock, when: datetime) -> None:
    clock.set(when)
    rt.step()


def digests_to(console: ConsoleAdapter, user: str) -> list[str]:
    return [s.message.body for s in console.messages_to(user) if s.message.kind == "digest"]


def play_the_week(rt: Runtime, clock: VirtualClock, console: ConsoleAdapter) -> None:
    """Ana does everything and passes; Bo does one lesson, fails the quiz and misses the session."""
    at(rt, clock, utc(2026, 3, 2, 9, 30))
    for user, lessons in (("ana", ("Lesson one", "Lesson two")), ("bo", ("Lesson one",))):
        for title in lessons:
            sent, b = button(console, user, "lesson.done", title)
            console.press(user, sent, b)
        sent, _ = button(console, user, "quiz.answer", "Check")
        choice = "Right" if user == "ana" else "Wrong"
        console.press(user, sent, next(b for b in sent.message.buttons if b.label == choice))
    at(rt, clock, utc(2026, 3, 3, 13, 55))
    sent, b = button(console, "ana", "session.checkin", "Check in: Live")
    console.press("ana", sent, b)
    at(rt, clock, utc(2026, 3, 3, 15, 0))  # bo missed the session


def test_the_next_weekly_moment_is_when_planning_first_has_something_to_plan(rt, clock, console):
    """The demo's clock stops only at these moments, so each must be exactly the first instant a digest or a
    recap becomes plannable: a second earlier nothing is, at it something is."""
    from bot.nudges.digests import next_weekly_moment

    seen = []
    for _ in range(3):
        with rt.factory() as session:
            moment = next_weekly_moment(session, rt.engine, clock.now())
        assert moment is not None
        clock.set(moment - timedelta(seconds=1))
        assert rt.plan_digests() == 0
        clock.set(moment)
        assert rt.plan_digests() > 0
        seen.append(moment)
    # London's Monday 09:00, then New York's, then London's next Monday.
    assert seen == [utc(2026, 3, 2, 9, 0), utc(2026, 3, 2, 14, 0), utc(2026, 3, 9, 9, 0)]


def test_digest_is_planned_at_each_managers_local_time_once_per_week(rt, clock, console):
    # Monday 09:00: 09:00 UTC for the London managers (max, and ana who manages kid), 14:00 UTC for mia (EST).
    clock.set(utc(2026, 3, 2, 8, 59))
    assert rt.plan_digests() == 0
    clock.set(utc(2026, 3, 2, 9, 0))
    assert rt.plan_digests() == 2
    assert deliveries(rt, "digest", "mia") == []
    clock.set(utc(2026, 3, 2, 13, 59))
    assert rt.plan_digests() == 0
    clock.set(utc(2026, 3, 2, 14, 0))
    assert rt.plan_digests() == 1
    assert rt.plan_digests() == 0
    clock.set(utc(2026, 3, 5, 12, 0))
    assert rt.plan_digests() == 0  # still the same ISO week
    assert [d.key.rsplit(":", 1)[1] for d in deliveries(rt, "digest", "mia")] == ["2026-W10"]


def test_digest_follows_the_managers_clock_across_dst(rt, clock, console):
    # Week 2: New York is on EDT (since 8 March), so Monday 09:00 there is 13:00 UTC, an hour earlier in UTC.
    clock.set(utc(2026, 3, 9, 12, 59))
    rt.plan_digests()
    assert deliveries(rt, "digest", "mia") == []  # 07:59 in New York
    clock.set(utc(2026, 3, 9, 13, 0))
    rt.plan_digests()
    assert [d.key.rsplit(":", 1)[1] for d in deliveries(rt, "digest", "mia")] == ["2026-W11"]


def test_digest_is_sent_to_the_manager_with_only_their_reports(rt, clock, console):
    play_the_week(rt, clock, console)
    clock.set(utc(2026, 3, 9, 13, 0))  # Monday 09:00 EDT
    rt.plan_digests()
    rt.drain()
    [body] = digests_to(console, "mia")
    lines = [line for line in body.splitlines() if line.startswith("- ")]
    assert lines == [
        "- **Ana** · Digesting: 4/4 steps, quiz avg 100%, sessions 1/1 · done",
        "- **Bo** · Digesting: 1/4 steps, quiz avg 0%, sessions 0/1 (1 missed), **1 overdue** · behind",
    ]
    assert "Zed" not in body and "Kid" not in body
    [other] = digests_to(console, "max")
    assert "**Zed**" in other and "Ana" not in other and "Bo" not in other


def test_include_indirect_adds_reports_of_reports(rt, clock, console):
    rt.settings.digest.include_indirect = True
    clock.set(utc(2026, 3, 2, 14, 0))
    rt.plan_digests()
    rt.drain()
    [body] = digests_to(console, "mia")
    names = [line.split("**")[1] for line in body.splitlines() if line.startswith("- ")]
    assert names == ["Ana", "Bo", "Kid"]


def test_include_indirect_off_lists_direct_reports_only(rt, clock, console):
    clock.set(utc(2026, 3, 2, 14, 0))
    rt.plan_digests()
    rt.drain()
    [body] = digests_to(console, "mia")
    names = [line.split("**")[1] for line in body.splitlines() if line.startswith("- ")]
    assert names == ["Ana", "Bo"]


def test_a_manager_with_no_enrolled_reports_gets_a_polite_empty_digest(rt, clock, console):
    with transaction(rt.factory) as session:
        boss = rt.engine.person(session, "console", "console", "boss", name="Boss", tz="Europe/London")
        rt.engine.person(session, "console", "console", "new", name="New").manager_id = boss.id
    clock.set(utc(2026, 3, 2, 9, 0))
    rt.plan_digests()
    rt.drain()
    [body] = digests_to(console, "boss")
    assert "None of your reports is enrolled in a program right now." in body


def test_a_large_teams_digest_comes_in_parts_cut_between_learners(rt, clock, console):
    """Issue 14 holds every message to MAX_CHUNK characters; a manager of 20 sent one of about 1,700."""
    from bot.journeys.chunks import MAX_CHUNK

    with transaction(rt.factory) as session:
        mia = rt.engine.person(session, "console", "console", "mia")
        cohort = rt.engine.cohort_by_name(session, "console", "c1")
        for n in range(18):
            p = rt.engine.person(
                session, "console", "console", f"r{n}", name=f"Report {n:02d} Longname-Doublebarrel", tz="Europe/London"
            )
            p.manager_id = mia.id
            rt.engine.enroll(session, cohort, p)
    clock.set(utc(2026, 3, 2, 14, 0))
    rt.plan_digests()
    rt.drain()
    parts = [s.message for s in console.messages_to("mia") if s.message.kind == "digest"]
    assert len(parts) >= 2
    assert [m.title for m in parts[1:]] == [f"Your team's learning this week ({i}/{len(parts)})" for i in range(2, len(parts) + 1)]
    assert all(len(m.body) <= MAX_CHUNK and m.body.count("**") % 2 == 0 for m in parts)
    lines = [line for m in parts for line in m.body.splitlines() if line.startswith("- ")]
    names = [line.split("**")[1] for line in lines]
    assert names == ["Ana", "Bo", *(f"Report {n:02d} Longname-Doublebarrel" for n in range(18))]
    assert all(line.endswith("· on track") or line.endswith("· behind") for line in lines), lines
    assert [bool(m.context) for m in parts] == [False] * (len(parts) - 1) + [True]
