"""Unlocking: day offsets at local time, enrollment-relative offsets, prerequisites, weekends, late enrollment."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.adapters.console import ConsoleAdapter
from bot.app import Runtime
from bot.clock import VirtualClock
from bot.storage.db import transaction
from bot.timewindow import zone
from tests.conftest import make_cohort
from tests.unit.helpers import build_runtime, button, events, progress, titles

PROGRAM = """
id: unlocking
title: Unlocking
tz: Europe/London
defaults:
  reminders: {enabled: false}
steps:
  - id: day0
    title: Day zero
    kind: lesson
    body: Welcome to the program.
  - id: day1
    title: Day one at ten
    kind: lesson
    body: The second lesson.
    unlock: {day: 1, at: "10:00"}
  - id: gated
    title: Gated
    kind: lesson
    body: Only after day zero.
    unlock: {day: 0, after: [day0]}
  - id: saturday
    title: Saturday lesson
    kind: lesson
    body: Unlocks on a Saturday.
    unlock: {day: 5}
    due: 2d
  - id: personal
    title: Two days after you joined
    kind: lesson
    body: Enrollment-relative.
    unlock: {day: 2, from: enrollment}
"""


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def rt(db_url: str, tmp_path: Path, clock: VirtualClock, console: ConsoleAdapter) -> Iterator[Runtime]:
    runtime = build_runtime(db_url, tmp_path, clock, console, {"unlocking": PROGRAM})
    yield runtime
    runtime.db.dispose()


def at(rt: Runtime, clock: VirtualClock, when: datetime) -> None:
    clock.set(when)
    rt.step()


def delivered_at(rt: Runtime, user: str, step: str) -> datetime:
    found = [e.ts for e in events(rt, "delivered", user) if e.object_id == f"program/unlocking/step/{step}"]
    assert len(found) == 1, found
    return found[0]


def test_same_lesson_reaches_each_zone_at_its_own_local_time(rt, clock, console):
    make_cohort(rt, "unlocking", [("ana", "Europe/London"), ("bo", "America/New_York")])
    at(rt, clock, utc(2026, 3, 2, 9, 29))
    assert titles(console, "ana") == [] and titles(console, "bo") == []
    at(rt, clock, utc(2026, 3, 2, 9, 30))  # 09:30 in London (GMT)
    assert titles(console, "ana") == ["Day zero"]
    assert titles(console, "bo") == []
    at(rt, clock, utc(2026, 3, 2, 14, 29))
    assert titles(console, "bo") == []
    at(rt, clock, utc(2026, 3, 2, 14, 30))  # 09:30 in New York (EST, UTC-5)
    assert titles(console, "bo") == ["Day zero"]
    ana, bo = delivered_at(rt, "ana", "day0"), delivered_at(rt, "bo", "day0")
    assert (ana, bo) == (utc(2026, 3, 2, 9, 30), utc(2026, 3, 2, 14, 30))
    for instant, tz in ((ana, "Europe/London"), (bo, "America/New_York")):
        local = instant.astimezone(zone(tz))
        assert local.weekday() < 5 and 9 <= local.hour < 17


def test_unlock_at_a_configured_local_time(rt, clock, console):
    make_cohort(rt, "unlocking", [("ana", "Europe/London"), ("bo", "America/New_York")])
    assert progress(rt, "ana", "day1").unlock_at == utc(2026, 3, 3, 10, 0)
    assert progress(rt, "bo", "day1").unlock_at == utc(2026, 3, 3, 15, 0)
    at(rt, clock, utc(2026, 3, 3, 9, 59))
    assert "Day one at ten" not in titles(console, "ana")
    at(rt, clock, utc(2026, 3, 3, 10, 0))
    assert "Day one at ten" in titles(console, "ana")
    assert "Day one at ten" not in titles(console, "bo")
    at(rt, clock, utc(2026, 3, 3, 15, 0))
    assert "Day one at ten" in titles(console, "bo")


def test_enrollment_relative_offsets_count_from_each_enrollment(rt, clock, console):
    cohort = make_cohort(rt, "unlocking", [("ana", "Europe/London")])  # enrolled Monday 07:00
    clock.set(utc(2026, 3, 3, 12, 0))  # Tuesday
    with transaction(rt.factory) as session:
        late = rt.engine.person(session, "console", "console", "cy", tz="Europe/London")
        rt.engine.enroll(session, session.merge(cohort), late)
    assert progress(rt, "ana", "personal").unlock_at == utc(2026, 3, 4, 9, 30)  # Wednesday
    assert progress(rt, "cy", "personal").unlock_at == utc(2026, 3, 5, 9, 30)  # Thursday
    at(rt, clock, utc(2026, 3, 4, 9, 30))
    assert "Two days after you joined" in titles(console, "ana")
    assert "Two days after you joined" not in titles(console, "cy")
    at(rt, clock, utc(2026, 3, 5, 9, 30))
    assert "Two days after you joined" in titles(console, "cy")


def test_prerequisite_blocks_delivery_until_done(rt, clock, console):
    make_cohort(rt, "unlocking", [("ana", "Europe/London")])
    at(rt, clock, utc(2026, 3, 2, 9, 30))
    assert "Day zero" in titles(console, "ana")
    assert "Gated" not in titles(console, "ana")
    assert progress(rt, "ana", "gated").state == "locked"
    at(rt, clock, utc(2026, 3, 3, 11, 0))  # a day later: still waiting
    assert "Gated" not in titles(console, "ana")
    sent, done = button(console, "ana", "lesson.done", "Day zero")
    console.press("ana", sent, done)
    rt.step()
    assert titles(console, "ana")[-1] == "Gated"
    assert delivered_at(rt, "ana", "gated") == utc(2026, 3, 3, 11, 0)
    assert progress(rt, "ana", "gated").state == "open"


def test_prerequisite_done_after_hours_delivers_at_the_next_opening(rt, clock, console):
    make_cohort(rt, "unlocking", [("ana", "Europe/London")])
    at(rt, clock, utc(2026, 3, 2, 9, 30))
    clock.set(utc(2026, 3, 2, 19, 0))  # Monday evening, outside working hours
    sent, done = button(console, "ana", "lesson.done", "Day zero")
    console.press("ana", sent, done)
    rt.step()
    assert "Gated" not in titles(console, "ana")
    at(rt, clock, utc(2026, 3, 3, 8, 59))
    assert "Gated" not in titles(console, "ana")
    at(rt, clock, utc(2026, 3, 3, 9, 0))  # Tuesday 09:00 London
    assert "Gated" in titles(console, "ana")
    assert delivered_at(rt, "ana", "gated") == utc(2026, 3, 3, 9, 0)


def test_saturday_unlock_arrives_on_monday(rt, clock, console):
    make_cohort(rt, "unlocking", [("ana", "Europe/London")])
    assert progress(rt, "ana", "saturday").unlock_at == utc(2026, 3, 7, 9, 30)
    at(rt, clock, utc(2026, 3, 7, 9, 30))
    at(rt, clock, utc(2026, 3, 8, 12, 0))
    at(rt, clock, utc(2026, 3, 9, 8, 59))
    assert "Saturday lesson" not in titles(console, "ana")
    at(rt, clock, utc(2026, 3, 9, 9, 0))
    assert "Saturday lesson" in titles(console, "ana")
    assert delivered_at(rt, "ana", "saturday") == utc(2026, 3, 9, 9, 0)


def test_a_weekend_unlock_does_not_eat_the_due_time(rt, clock, console):
    """Issue 14: ``due`` ran from the Saturday unlock, so a Monday delivery kept 1.5 of its 2 days."""
    make_cohort(rt, "unlocking", [("ana", "Europe/London")])
    # Planned at enrolment from the planned delivery (Monday 09:00), not from the unlock (Saturday 09:30).
    assert progress(rt, "ana", "saturday").due_at == utc(2026, 3, 11, 9, 0)
    at(rt, clock, utc(2026, 3, 9, 9, 0))
    assert "Saturday lesson" in titles(console, "ana")
    assert progress(rt, "ana", "saturday").due_at == utc(2026, 3, 11, 9, 0)


def test_due_runs_from_the_actual_delivery(rt, clock, console):
    """A card that waits (here a vacation pause over Monday) is due two days after it really arrives."""
    make_cohort(rt, "unlocking", [("ana", "Europe/London")])
    clock.set(utc(2026, 3, 6, 12, 0))
    with transaction(rt.factory) as session:
        person = rt.engine.person(session, "console", "console", "ana")
        rt.engine.pause(session, person, utc(2026, 3, 10, 11, 0))
    for day, hour in ((7, 9), (9, 9), (9, 12), (10, 11)):
        at(rt, clock, utc(2026, 3, day, hour, 0))
    assert delivered_at(rt, "ana", "saturday") == utc(2026, 3, 10, 11, 0)
    assert progress(rt, "ana", "saturday").due_at == utc(2026, 3, 12, 11, 0)


def test_late_enrollment_gets_what_is_due_by_now(rt, clock, console):
    clock.set(utc(2026, 3, 5, 10, 0))  # Thursday of week one: the cohort started on Monday
    make_cohort(rt, "unlocking", [("late", "Europe/London")])
    rt.step()
    got = titles(console, "late")
    assert sorted(got) == ["Day one at ten", "Day zero"]
    assert progress(rt, "late", "saturday").state == "locked"
    # Enrollment-relative: two days after Thursday is Saturday, which becomes Monday.
    assert progress(rt, "late", "personal").unlock_at == utc(2026, 3, 7, 9, 30)
    at(rt, clock, utc(2026, 3, 9, 9, 0))
    assert {"Saturday lesson", "Two days after you joined"} <= set(titles(console, "late"))


def test_nothing_is_delivered_before_the_cohort_starts(rt, clock, console):
    make_cohort(rt, "unlocking", [("ana", "Europe/London")], start=datetime(2026, 3, 9).date())
    for day in range(2, 7):
        at(rt, clock, utc(2026, 3, day, 12, 0))
    assert titles(console, "ana") == []
    at(rt, clock, utc(2026, 3, 9, 9, 30))
    assert titles(console, "ana") == ["Day zero"]
    assert delivered_at(rt, "ana", "day0") == utc(2026, 3, 9, 9, 30)
    # Enrollment-relative steps count from the cohort start when the learner enrolled ahead of it.
    assert progress(rt, "ana", "personal").unlock_at == utc(2026, 3, 11, 9, 30)
