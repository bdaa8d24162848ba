"""Live sessions: RSVPs, capacity, session reminders, check-in windows and overrides, missed sessions, completion."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.adapters.console import ConsoleAdapter
from bot.app import Runtime
from bot.clock import VirtualClock
from bot.dispatcher import SORRY
from bot.messages import Button
from bot.storage.models import Attendance, Enrollment, Person
from tests.conftest import make_cohort
from tests.unit.helpers import build_runtime, button, enrollment, ephemeral_texts, events, progress

PROGRAM = """
id: live
title: Live
tz: Europe/London
defaults:
  reminders: {enabled: false}
completion:
  min_sessions_attended: 1
steps:
  - id: intro
    title: Intro
    kind: lesson
    body: Read this before the workshop.
  - id: workshop
    title: Workshop
    kind: session
    start: {day: 2, at: "14:00"}
    duration: 1h
    capacity: 2
    join_url: https://meet.example.com/workshop
    checkin: {opens_before: 10m, closes_after: 30m}
    session_reminders: [24h, 15m]
  - id: closing
    title: Closing
    kind: session
    start: {day: 4, at: "14:00"}
    duration: 1h
"""

#: The workshop: Wednesday 4 March 2026, 14:00-15:00 London (GMT = UTC); check-in 13:50-14:30.
WORKSHOP = datetime(2026, 3, 4, 14, 0, tzinfo=UTC)
LEARNERS = [
    ("ana", "Europe/London"),
    ("bo", "Europe/London"),
    ("cy", "Europe/London"),
    ("di", "Europe/London"),
]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def rt(db_url: str, tmp_path: Path, clock: VirtualClock, console: ConsoleAdapter) -> Iterator[Runtime]:
    runtime = build_runtime(db_url, tmp_path, clock, console, {"live": PROGRAM})
    make_cohort(runtime, "live", LEARNERS)
    clock.set(utc(2026, 3, 2, 9, 0))
    runtime.step()  # invites go out on Monday morning (the sessions are less than a week away)
    yield runtime
    runtime.db.dispose()


def at(rt: Runtime, clock: VirtualClock, when: datetime) -> None:
    clock.set(when)
    rt.step()


def rsvp(console: ConsoleAdapter, user: str, answer: str):
    sent, b = button(console, user, f"rsvp.{answer}", "Live session: Workshop")
    return console.press(user, sent, b)


def rsvps(rt: Runtime) -> dict[str, str | None]:
    with rt.factory() as session:
        rows = session.execute(
            select(Person.user_id, Attendance.rsvp)
            .join(Enrollment, Enrollment.person_id == Person.id)
            .join(Attendance, Attendance.enrollment_id == Enrollment.id)
            .where(Attendance.session_id == 1)
        ).all()
        return dict(rows)


def checkin_button(rt: Runtime, user: str) -> Button:
    return Button("Check in", "session.checkin", str(progress(rt, user, "workshop").id))


def coming_up(console: ConsoleAdapter, user: str) -> int:
    return sum(1 for s in console.messages_to(user) if s.message.title == "Coming up: Workshop")


def test_invites_carry_rsvp_buttons_and_an_ics(rt, console):
    sent, _ = button(console, "ana", "rsvp.yes", "Live session: Workshop")
    assert [b.action for b in sent.message.buttons] == ["rsvp.yes", "rsvp.maybe", "rsvp.no", "session.join"]
    assert sent.message.buttons[-1].url == "https://meet.example.com/workshop", "Join is a link button"
    assert [a.filename for a in sent.message.attachments] == ["workshop.ics"]
    assert "Wed 4 Mar, 14:00 GMT" in [f.value for f in sent.message.fields]


def test_rsvp_yes_maybe_no(rt, console):
    assert "You're going" in rsvp(console, "ana", "yes").ephemeral.body
    assert "maybe" in rsvp(console, "bo", "maybe").ephemeral.body
    assert "Thanks for letting us know" in rsvp(console, "cy", "no").ephemeral.body
    assert rsvps(rt) == {"ana": "yes", "bo": "maybe", "cy": "no", "di": None}
    registered = [
        (e.object_type, e.object_id) for e in events(rt, "registered") if e.object_type == "session"
    ]
    assert registered == [("session", "program/live/step/workshop")]
    assert [e.person_id for e in events(rt, "registered", "ana") if e.object_type == "session"]
    # Changing a yes to a no is recorded as such.
    rsvp(console, "ana", "no")
    assert rsvps(rt)["ana"] == "no"
    assert [e.result for e in events(rt, "unregistered", "ana")] == [{"response": "no"}]


def test_rsvp_twice_records_once(rt, console):
    rsvp(console, "ana", "yes")
    rsvp(console, "ana", "yes")
    assert len([e for e in events(rt, "registered", "ana") if e.object_type == "session"]) == 1


def test_capacity_puts_the_next_yes_on_the_waitlist(rt, console):
    rsvp(console, "ana", "yes")
    rsvp(console, "bo", "yes")
    reply = rsvp(console, "cy", "yes")  # capacity is 2
    assert "waitlist" in reply.ephemeral.body
    assert rsvps(rt) == {"ana": "yes", "bo": "yes", "cy": "wait", "di": None}
    assert not [e for e in events(rt, "registered", "cy") if e.object_type == "session"]


def test_session_reminders_go_to_everyone_who_did_not_decline(rt, clock, console):
    rsvp(console, "ana", "yes")
    rsvp(console, "bo", "maybe")
    rsvp(console, "cy", "no")  # di never answers
    at(rt, clock, utc(2026, 3, 3, 13, 59))
    assert [coming_up(console, u) for u in ("ana", "bo", "cy", "di")] == [0, 0, 0, 0]
    at(rt, clock, utc(2026, 3, 3, 14, 0))  # 24 hours before
    assert [coming_up(console, u) for u in ("ana", "bo", "cy", "di")] == [1, 1, 0, 1]
    at(rt, clock, utc(2026, 3, 4, 13, 44))
    assert [coming_up(console, u) for u in ("ana", "bo", "cy", "di")] == [1, 1, 0, 1]
    at(rt, clock, utc(2026, 3, 4, 13, 45))  # 15 minutes before
    assert [coming_up(console, u) for u in ("ana", "bo", "cy", "di")] == [2, 2, 0, 2]
    last = [s for s in console.messages_to("ana") if s.message.title == "Coming up: Workshop"][-1]
    assert "in 15 minutes" in last.message.body


def test_checkin_before_the_window_is_refused_politely(rt, clock, console):
    invite, _ = button(console, "ana", "rsvp.yes", "Live session: Workshop")
    clock.set(utc(2026, 3, 4, 13, 49))
    reply = console.press("ana", invite, checkin_button(rt, "ana"))
    text = reply.ephemeral.body
    assert text.startswith("Check-in for 'Workshop' opens shortly before it starts")
    assert "Traceback" not in text and text != SORRY
    assert progress(rt, "ana", "workshop").state != "done"
    assert events(rt, "attended") == []


def test_checkin_after_the_window_is_refused_politely(rt, clock, console):
    invite, _ = button(console, "ana", "rsvp.yes", "Live session: Workshop")
    clock.set(utc(2026, 3, 4, 14, 31))
    reply = console.press("ana", invite, checkin_button(rt, "ana"))
    assert reply.ephemeral.body == "Check-in for 'Workshop' has closed. A lead can still mark you present."
    assert events(rt, "attended") == []


def test_checkin_inside_the_window_attends_and_completes(rt, clock, console):
    at(rt, clock, utc(2026, 3, 4, 13, 50))
    sent, b = button(console, "ana", "session.checkin", "Check in: Workshop")
    reply = console.press("ana", sent, b)
    assert reply.ephemeral.body == "You're checked in. Enjoy the session!"
    assert console.press("ana", sent, b).ephemeral.body == "You're already checked in."
    sp = progress(rt, "ana", "workshop")
    assert sp.state == "done"
    attended = events(rt, "attended", "ana")
    assert [(e.object_type, e.object_id) for e in attended] == [("session", "program/live/step/workshop")]
    assert [e.object_id for e in events(rt, "completed", "ana")] == ["program/live/step/workshop"]


def test_lead_can_open_checkin_early_and_close_it(rt, clock, console):
    invite, _ = button(console, "ana", "rsvp.yes", "Live session: Workshop")
    clock.set(utc(2026, 3, 4, 13, 0))
    reply = console.command("lead", "checkin open workshop")
    assert reply.ephemeral.body == "Check-in for 'Workshop' (c1) is now open."
    assert console.press("ana", invite, checkin_button(rt, "ana")).ephemeral.body.startswith(
        "You're checked in"
    )
    assert progress(rt, "ana", "workshop").state == "done"
    # Closing it refuses check-in even inside the automatic window.
    console.command("lead", "checkin close workshop")
    clock.set(utc(2026, 3, 4, 14, 0))
    assert "has closed" in console.press("bo", invite, checkin_button(rt, "bo")).ephemeral.body
    assert progress(rt, "bo", "workshop").state != "done"


def test_learner_cannot_open_checkin(rt, clock, console):
    reply = console.command("ana", "checkin open workshop")
    assert reply.ephemeral.body == "None of the cohorts you lead has a session 'workshop'."
    reply = console.command("ana", "checkin open workshop c1")
    assert reply.ephemeral.body == "Only a lead of cohort 'c1' can do that."


def test_not_attended_by_the_end_becomes_missed(rt, clock, console):
    at(rt, clock, utc(2026, 3, 4, 13, 55))
    sent, b = button(console, "ana", "session.checkin", "Check in: Workshop")
    console.press("ana", sent, b)
    at(rt, clock, utc(2026, 3, 4, 14, 59))
    assert progress(rt, "bo", "workshop").state == "open"
    at(rt, clock, utc(2026, 3, 4, 15, 0))  # the end of the session
    states = {u: progress(rt, u, "workshop").state for u, _ in LEARNERS}
    assert states == {"ana": "done", "bo": "missed", "cy": "missed", "di": "missed"}
    missed = events(rt, "missed")
    assert sorted(e.person_id for e in missed) == sorted(
        enrollment(rt, u).person_id for u in ("bo", "cy", "di")
    )
    assert {(e.object_type, e.object_id) for e in missed} == {("session", "program/live/step/workshop")}
    at(rt, clock, utc(2026, 3, 4, 16, 0))  # later ticks add nothing
    assert len(events(rt, "missed")) == 3


def test_program_completes_with_min_sessions_attended(rt, clock, console):
    at(rt, clock, utc(2026, 3, 2, 9, 30))  # the lesson unlocks at 09:30
    lesson, done = button(console, "ana", "lesson.done", "Intro")
    console.press("ana", lesson, done)
    assert enrollment(rt, "ana").status == "active"
    at(rt, clock, utc(2026, 3, 4, 13, 55))
    sent, b = button(console, "ana", "session.checkin", "Check in: Workshop")
    console.press("ana", sent, b)
    e = enrollment(rt, "ana")
    assert (e.status, e.completed_at) == ("completed", utc(2026, 3, 4, 13, 55))
    assert [x.object_id for x in events(rt, "completed", "ana") if x.object_type == "program"] == [
        "program/live"
    ]
    # One session of two is enough; the other learners attended nothing and are still active.
    assert enrollment(rt, "bo").status == "active"


def test_attending_without_the_required_lesson_does_not_complete(rt, clock, console):
    at(rt, clock, utc(2026, 3, 4, 13, 55))
    sent, b = button(console, "bo", "session.checkin", "Check in: Workshop")
    console.press("bo", sent, b)
    assert enrollment(rt, "bo").status == "active"
    assert ephemeral_texts(console, "bo") == ["You're checked in. Enjoy the session!"]


def test_the_waitlisted_cannot_check_in_so_attendance_stays_within_capacity(rt, clock, console):
    """Issue 14: 19 attended a session of 12 seats because the waitlisted could check in."""
    for user in ("ana", "bo", "cy"):
        rsvp(console, user, "yes")  # capacity 2: cy is waitlisted
    at(rt, clock, utc(2026, 3, 4, 13, 50))
    prompted = {u for u, _ in LEARNERS if any(s.message.title == "Check in: Workshop" for s in console.messages_to(u))}
    assert prompted == {"ana", "bo", "di"}  # no check-in prompt for the waitlisted
    invite, _ = button(console, "cy", "rsvp.yes", "Live session: Workshop")
    reply = console.press("cy", invite, checkin_button(rt, "cy"))
    assert "waitlist" in reply.ephemeral.body and reply.ephemeral.body != SORRY
    # di never answered: the two seats are held by ana and bo, so there is none for di.
    reply = console.press("di", invite, checkin_button(rt, "di"))
    assert "is full" in reply.ephemeral.body
    for user in ("ana", "bo"):
        assert console.press(user, invite, checkin_button(rt, user)).ephemeral.body.startswith("You're checked in")
    assert sorted(enrollment(rt, u).person_id for u in ("ana", "bo")) == sorted(
        e.person_id for e in events(rt, "attended")
    )


def test_a_free_seat_can_be_taken_by_someone_without_an_rsvp(rt, clock, console):
    rsvp(console, "ana", "yes")
    at(rt, clock, utc(2026, 3, 4, 13, 50))
    invite, _ = button(console, "di", "session.checkin", "Check in: Workshop")
    assert console.press("di", invite, checkin_button(rt, "di")).ephemeral.body.startswith("You're checked in")
    reply = console.press("cy", invite, checkin_button(rt, "cy"))  # ana's reserved seat is the last one
    assert "is full" in reply.ephemeral.body
    assert console.press("ana", invite, checkin_button(rt, "ana")).ephemeral.body.startswith("You're checked in")


def complete_at_the_workshop(rt: Runtime, clock: VirtualClock, console: ConsoleAdapter) -> None:
    """ana reads the lesson and attends the workshop: the program is complete before the closing session."""
    at(rt, clock, utc(2026, 3, 2, 9, 30))
    lesson, done = button(console, "ana", "lesson.done", "Intro")
    console.press("ana", lesson, done)
    at(rt, clock, utc(2026, 3, 4, 13, 55))
    sent, b = button(console, "ana", "session.checkin", "Check in: Workshop")
    console.press("ana", sent, b)
    assert enrollment(rt, "ana").status == "completed"


def test_completing_early_keeps_the_later_session(rt, clock, console):
    """Issue 14: learners who completed before the second clinic got no reminder, no check-in and an open step."""
    complete_at_the_workshop(rt, clock, console)
    at(rt, clock, utc(2026, 3, 5, 14, 0))  # 24 hours before the closing session
    at(rt, clock, utc(2026, 3, 6, 13, 50))  # 15 minutes before it, and its check-in opens
    got = [s.message.title for s in console.messages_to("ana") if s.message.title.endswith(": Closing")]
    assert got[1:] == ["Coming up: Closing", "Coming up: Closing", "Check in: Closing"]  # after the invite
    sent, b = button(console, "ana", "session.checkin", "Check in: Closing")
    assert console.press("ana", sent, b).ephemeral.body.startswith("You're checked in")
    assert progress(rt, "ana", "closing").state == "done"
    assert [e.object_id for e in events(rt, "attended", "ana")][-1] == "program/live/step/closing"


def test_a_completed_learner_who_skips_the_later_session_has_it_closed(rt, clock, console):
    complete_at_the_workshop(rt, clock, console)
    at(rt, clock, utc(2026, 3, 6, 15, 0))  # the closing session ended
    assert progress(rt, "ana", "closing").state == "missed"
    assert enrollment(rt, "ana").status == "completed"


def test_a_day_ahead_reminder_at_night_moves_to_the_last_working_hour(rt, clock, console):
    """Issue 14: 24-hour reminders reached learners at night. The workshop is Wednesday 14:00 UTC, 23:00 in
    Tokyo: its 24-hour reminder (Tuesday 23:00 there) goes at 16:30 Tuesday, the last working hour; the
    15-minute reminder stays time-bound."""
    make_cohort(rt, "live", [("kei", "Asia/Tokyo")], name="c2", lead=None)
    at(rt, clock, utc(2026, 3, 3, 7, 29))
    assert coming_up(console, "kei") == 0
    at(rt, clock, utc(2026, 3, 3, 7, 30))  # 16:30 in Tokyo
    assert coming_up(console, "kei") == 1
    at(rt, clock, utc(2026, 3, 4, 13, 44))
    assert coming_up(console, "kei") == 1
    at(rt, clock, utc(2026, 3, 4, 13, 45))  # 22:45 in Tokyo: time-bound
    assert coming_up(console, "kei") == 2
    # London learners' 24-hour reminder fell inside their working hours and did not move.
    assert coming_up(console, "ana") == 2


PREWORK = """
id: prework
title: Prework
tz: Europe/London
defaults:
  reminders: {enabled: false}
steps:
  - id: warmup
    title: Warm-up
    kind: lesson
    body: "Next up: {{ session.title }}."
  - id: prep
    title: Prep
    kind: lesson
    required: false
    unlock: {day: 0}
    body: "Prepare for {{ session.title }}, {{ session.start_local }}."
  - id: kickoff
    title: Kickoff
    kind: session
    start: {day: 2, at: "14:00"}
    duration: 1h
  - id: deep-dive
    title: Deep dive
    kind: session
    start: {day: 4, at: "14:00"}
    duration: 1h
    prework: [prep]
"""


def test_a_lesson_speaks_of_the_session_it_is_prework_for(db_url, tmp_path, clock, console):
    """Pre-work names its own session even when another comes first; other lessons name the next session."""
    runtime = build_runtime(db_url, tmp_path, clock, console, {"prework": PREWORK})
    make_cohort(runtime, "prework", [("ana", "Europe/London"), ("bo", "Europe/London")])
    clock.set(utc(2026, 3, 2, 12, 0))
    runtime.step()
    for user in ("ana", "bo"):  # one batch: the cohort's sessions are read once and serve both learners
        bodies = {s.message.title: s.message.body for s in console.messages_to(user)}
        assert "Next up: Kickoff." in bodies["Warm-up"]
        assert "Prepare for Deep dive, Fri 6 Mar, 14:00 GMT." in bodies["Prep"]
    runtime.db.dispose()
