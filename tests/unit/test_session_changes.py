"""Moving and cancelling a live session: re-planned set-wise, invites updated in place, calendar files revised,
and a cancelled session leaving the completion rules. Console adapter, both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from icalendar import Calendar
from sqlalchemy import select

from bot.adapters.console import ConsoleAdapter, Sent
from bot.app import Runtime
from bot.clock import VirtualClock
from bot.errors import InvalidInput
from bot.messages import Button
from bot.storage.db import transaction
from bot.storage.models import AgendaItem, Cohort, Delivery, Enrollment, LiveSessionRow, Person, StepProgress
from tests.conftest import make_cohort
from tests.unit.helpers import build_runtime, button, enrollment, events, progress, state
from tests.unit.test_sessions import at, utc

PROGRAM = """
id: live
title: Live
tz: Europe/London
defaults:
  reminders: {enabled: false}
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
    join_url: https://meet.example.com/workshop
    checkin: {opens_before: 10m, closes_after: 30m}
    session_reminders: [24h, 15m]
  - id: closing
    title: Closing
    kind: session
    start: {day: 4, at: "14:00"}
    duration: 1h
"""

#: The workshop was Wednesday 4 March 2026, 14:00 London (GMT = UTC); it moves to Thursday 12 March, 15:00.
OLD = datetime(2026, 3, 4, 14, 0, tzinfo=UTC)
NEW = datetime(2026, 3, 12, 15, 0, tzinfo=UTC)
LEARNERS = [("ana", "Europe/London"), ("bo", "America/New_York")]


@pytest.fixture
def rt(db_url: str, tmp_path: Path, clock: VirtualClock, console: ConsoleAdapter) -> Iterator[Runtime]:
    runtime = build_runtime(
        db_url, tmp_path, clock, console, {"live": PROGRAM},
        live={"organizer": "academy@example.com", "ics_domain": "learn.example.com"},
    )
    make_cohort(runtime, "live", LEARNERS)
    clock.set(utc(2026, 3, 2, 14, 0))
    runtime.step()  # the invites go out on Monday (the sessions are less than a week away)
    yield runtime
    runtime.db.dispose()


def invite(console: ConsoleAdapter, user: str) -> Sent:
    return next(s for s in console.messages_to(user) if s.message.kind == "session" and "Workshop" in s.message.title)


def calendar(sent: Sent) -> Calendar:
    (attachment,) = [a for a in sent.message.attachments if a.filename == "workshop.ics"]
    return Calendar.from_ical(attachment.data())


def vevent(cal: Calendar):  # type: ignore[no-untyped-def]
    (event,) = cal.walk("VEVENT")
    return event


def titles(console: ConsoleAdapter, user: str, title: str) -> int:
    return sum(1 for s in console.messages_to(user) if s.message.title == title)


def lead_says(console: ConsoleAdapter, text: str, user: str = "lead") -> str:
    response = console.command(user, text)
    assert response.ephemeral is not None
    return response.ephemeral.body or response.ephemeral.text


def live_row(rt: Runtime) -> LiveSessionRow:
    with rt.factory() as session:
        row = session.scalar(select(LiveSessionRow).where(LiveSessionRow.step_id == "workshop"))
        assert row is not None
        session.expunge(row)
        return row


def test_a_move_updates_the_invite_in_place_with_a_revised_calendar_file(rt, clock, console):
    """RFC 5546 §3.2.2 (REQUEST) and RFC 5545 §3.8.7.4: the update keeps the UID, raises SEQUENCE, keeps
    METHOD:REQUEST with ORGANIZER and ATTENDEE; the RSVP given before the move stays, in the store and as PARTSTAT."""
    first, yes = button(console, "ana", "rsvp.yes", "Live session: Workshop")
    console.press("ana", first, yes)
    before = vevent(calendar(invite(console, "bo")))
    sent_before = len(console.messages_to("ana"))

    reply = lead_says(console, "session move c1 workshop 2026-03-12 15:00")
    assert "now starts Thu 12 Mar 2026, 15:00 GMT" in reply and "2 invite(s)" in reply
    rt.step()

    updated = invite(console, "ana")
    assert updated is first, "the invite is edited, not posted again"
    assert len(updated.history) >= 2 and "Thu 12 Mar, 15:00 GMT" in [f.value for f in updated.message.fields]
    assert "Moved to a new time" in updated.message.body
    assert [b.action for b in updated.message.buttons] == ["rsvp.yes", "rsvp.maybe", "rsvp.no", "session.join"]
    assert len(console.messages_to("ana")) == sent_before + 1, "one new message: the notice with the new file"
    notice = console.messages_to("ana")[-1]
    assert notice.message.title == "Moved: Workshop"
    cal = calendar(notice)
    event = vevent(cal)
    assert str(cal["METHOD"]) == "REQUEST"
    assert str(event["UID"]) == str(before["UID"]) == "blendwise-1-workshop@learn.example.com"
    assert int(event["SEQUENCE"]) == int(before["SEQUENCE"]) + 1 == 1
    assert event.decoded("DTSTART") == NEW and event.decoded("DTEND") == utc(2026, 3, 12, 16, 0)
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["ORGANIZER"]) == "mailto:academy@example.com"
    assert event["ATTENDEE"].params["PARTSTAT"] == "ACCEPTED" and event["ATTENDEE"].params["RSVP"] == "TRUE"
    assert str(vevent(calendar(console.messages_to("bo")[-1]))["ATTENDEE"].params["PARTSTAT"]) == "NEEDS-ACTION"
    assert progress(rt, "ana", "workshop").state == "open"
    (moved,) = events(rt, "rescheduled", "ana")
    assert moved.result == {"extensions": {"from": OLD.isoformat(), "to": NEW.isoformat(), "sequence": 1}}


def test_reminders_and_check_in_follow_the_new_time_only(rt, clock, console):
    """Nothing planned for the old time fires; the 24 h and 15 min reminders and check-in follow the new start."""
    at(rt, clock, utc(2026, 3, 3, 14, 0))  # the 24-hour reminder for the old time goes out
    assert titles(console, "ana", "Coming up: Workshop") == 1
    lead_says(console, "session move c1 workshop 2026-03-12 15:00")
    workshop = progress(rt, "ana", "workshop")
    checkin = Button("Check in", "session.checkin", str(workshop.id))
    for when in (utc(2026, 3, 4, 13, 45), utc(2026, 3, 4, 13, 50), utc(2026, 3, 4, 15, 1)):
        at(rt, clock, when)  # the old 15-minute reminder, the old check-in, the old end
    assert titles(console, "ana", "Coming up: Workshop") == 1
    assert titles(console, "ana", "Check in: Workshop") == 0
    assert state(rt, "ana", "workshop") == "open", "not marked missed at the old end"
    reply = console.press("ana", invite(console, "ana"), checkin)
    assert reply.ephemeral is not None and "opens shortly before it starts" in reply.ephemeral.body
    at(rt, clock, utc(2026, 3, 11, 15, 0))
    assert titles(console, "ana", "Coming up: Workshop") == 2
    at(rt, clock, utc(2026, 3, 12, 14, 45))
    assert titles(console, "ana", "Coming up: Workshop") == 3
    at(rt, clock, utc(2026, 3, 12, 14, 50))
    assert titles(console, "ana", "Check in: Workshop") == 1
    reply = console.press("ana", invite(console, "ana"), checkin)
    assert state(rt, "ana", "workshop") == "done"
    at(rt, clock, utc(2026, 3, 12, 16, 1))
    assert state(rt, "bo", "workshop") == "missed", "missed-marking follows the new end"


def day_ahead_reminders(rt: Runtime) -> dict[str, datetime | None]:
    """Each learner's first (24-hour) workshop reminder, as planned."""
    with rt.factory() as session:
        rows = session.execute(
            select(Person.user_id, AgendaItem.fire_at)
            .join(StepProgress, StepProgress.id == AgendaItem.progress_id)
            .join(Enrollment, Enrollment.id == StepProgress.enrollment_id)
            .join(Person, Person.id == Enrollment.person_id)
            .where(StepProgress.step_id == "workshop", AgendaItem.action == "session_remind", AgendaItem.seq == 1)
        ).all()
    return dict(rows)  # type: ignore[arg-type]


def test_a_move_keeps_day_ahead_reminders_out_of_the_night(rt, clock, console):
    """Issue 14's rule holds after a move as at enrolment: the workshop moves to Thursday 15:00 UTC, midnight in
    Tokyo, so Kei's 24-hour reminder (Thursday 00:00 there) goes at 16:30 Wednesday, the last working hour;
    London's and New York's fall in working hours and stay 24 hours ahead."""
    with transaction(rt.factory) as session:
        cohort = session.scalar(select(Cohort).where(Cohort.name == "c1"))
        assert cohort is not None
        kei = rt.engine.person(session, "console", "console", "kei", name="Kei", tz="Asia/Tokyo")
        rt.engine.enroll(session, cohort, kei)
    lead_says(console, "session move c1 workshop 2026-03-12 15:00")
    assert day_ahead_reminders(rt) == {
        "ana": utc(2026, 3, 11, 15, 0), "bo": utc(2026, 3, 11, 15, 0), "kei": utc(2026, 3, 11, 7, 30),
    }  # fmt: skip
    at(rt, clock, utc(2026, 3, 11, 7, 30))
    assert titles(console, "kei", "Coming up: Workshop") == 1 and titles(console, "ana", "Coming up: Workshop") == 0


def test_a_manual_check_in_state_does_not_survive_a_move(rt, clock, console):
    """A lead's "checkin open" (or "close") was about the old time: after a move check-in follows the new window
    by itself, so a session opened by hand on Monday is not open for a week before its new time."""
    checkin = Button("Check in", "session.checkin", str(progress(rt, "ana", "workshop").id))
    lead_says(console, "checkin open workshop")
    lead_says(console, "session move c1 workshop 2026-03-12 15:00")
    assert live_row(rt).checkin_state == "auto"
    reply = console.press("ana", invite(console, "ana"), checkin)
    assert reply.ephemeral is not None and "opens shortly before it starts" in reply.ephemeral.body
    lead_says(console, "checkin close workshop")
    lead_says(console, "session move c1 workshop 2026-03-13 15:00")
    at(rt, clock, utc(2026, 3, 13, 14, 50))  # the new window opens: the manual close was for the old time
    reply = console.press("ana", invite(console, "ana"), checkin)
    assert reply.ephemeral is not None and reply.ephemeral.body.startswith("You're checked in")


def test_moving_a_session_under_way_closes_check_in_and_keeps_who_attended(rt, clock, console):
    """The edge case: the host never came, so the lead moves the session while it is under way and check-in is open
    (here also opened by hand). Check-in closes at once and reopens at the new time; who checked in stays checked
    in (the learning record is append-only: they were there), gets no reminders for the new time, and the others
    are planned for it as usual."""
    clock.set(utc(2026, 3, 4, 14, 5))
    reply = console.press("ana", invite(console, "ana"), Button("Check in", "session.checkin", str(progress(rt, "ana", "workshop").id)))
    assert reply.ephemeral is not None and reply.ephemeral.body.startswith("You're checked in")
    lead_says(console, "checkin open workshop")
    lead_says(console, "session move c1 workshop 2026-03-12 15:00")
    bo = Button("Check in", "session.checkin", str(progress(rt, "bo", "workshop").id))
    reply = console.press("bo", invite(console, "bo"), bo)
    assert reply.ephemeral is not None and "opens shortly before it starts" in reply.ephemeral.body
    assert state(rt, "ana", "workshop") == "done" and [e.verb for e in events(rt, "attended", "ana")] == ["attended"]
    at(rt, clock, utc(2026, 3, 4, 15, 31))  # the old end and check-in close: nobody is marked missed
    assert state(rt, "bo", "workshop") == "open"
    at(rt, clock, utc(2026, 3, 12, 14, 50))
    assert titles(console, "bo", "Check in: Workshop") == 1 and titles(console, "ana", "Check in: Workshop") == 0
    assert titles(console, "ana", "Coming up: Workshop") == 0
    reply = console.press("bo", invite(console, "bo"), bo)
    assert reply.ephemeral is not None and reply.ephemeral.body.startswith("You're checked in")


def test_a_pending_reminder_for_the_old_time_never_fires(rt, clock, console):
    """A reminder already in the outbox (planned, not yet sent) when the session moves is skipped."""
    clock.set(utc(2026, 3, 3, 14, 0))
    rt.tick()  # planned, not drained
    with rt.factory() as session:
        pending = session.scalars(select(Delivery).where(Delivery.purpose == "session_remind")).all()
        assert {d.state for d in pending} == {"pending"} and len(pending) == 2
    lead_says(console, "session move c1 workshop 2026-03-12 15:00")
    rt.drain()
    assert titles(console, "ana", "Coming up: Workshop") == 0
    with rt.factory() as session:
        assert {d.state for d in session.scalars(select(Delivery).where(Delivery.purpose == "session_remind"))} == {
            "skipped"
        }


def test_an_invite_not_sent_yet_follows_the_session(db_url, tmp_path, clock, console):
    """Moved before anyone was invited: the week-ahead invite moves with it, and nobody gets a change notice."""
    runtime = build_runtime(db_url, tmp_path, clock, console, {"live": PROGRAM})
    make_cohort(runtime, "live", LEARNERS)  # the cohort starts Monday 2 March; now is before any invite
    with transaction(runtime.factory) as session:
        live = session.scalar(select(LiveSessionRow).where(LiveSessionRow.step_id == "workshop"))
        runtime.engine.move_session(session, live, utc(2026, 3, 20, 14, 0))
    with runtime.factory() as session:
        fire = session.scalar(
            select(AgendaItem.fire_at)
            .join(Enrollment, Enrollment.id == AgendaItem.enrollment_id)
            .where(AgendaItem.progress_id == progress(runtime, "ana", "workshop").id, AgendaItem.action == "deliver")
        )
    assert fire == utc(2026, 3, 13, 14, 0), "a week before the new start"
    assert progress(runtime, "ana", "workshop").unlock_at == utc(2026, 3, 13, 14, 0)
    runtime.step()
    assert titles(console, "ana", "Live session: Workshop") == 0, "not due any more"
    at(runtime, clock, utc(2026, 3, 13, 14, 0))
    (card,) = [s for s in console.messages_to("ana") if s.message.title == "Live session: Workshop"]
    assert "Fri 20 Mar, 14:00 GMT" in [f.value for f in card.message.fields]
    assert int(vevent(calendar(card))["SEQUENCE"]) == 1
    assert titles(console, "ana", "Moved: Workshop") == 0, "nobody held the old invite"
    runtime.db.dispose()


def test_cancel_sends_a_cancellation_and_drops_everything_pending(rt, clock, console):
    """RFC 5546 §3.2.5 (CANCEL): same UID, SEQUENCE higher than the last request, STATUS:CANCELLED, ORGANIZER and
    ATTENDEE; the invite shows it is cancelled and has no RSVP buttons left."""
    original = vevent(calendar(invite(console, "ana")))
    reply = lead_says(console, "session cancel c1 workshop")
    assert "is cancelled" in reply
    rt.step()
    card = invite(console, "ana")
    assert card.message.title == "Cancelled: Workshop" and card.message.buttons == []
    notice = console.messages_to("ana")[-1]
    cal = calendar(notice)
    event = vevent(cal)
    assert str(cal["METHOD"]) == "CANCEL" and str(event["STATUS"]) == "CANCELLED"
    assert str(event["UID"]) == str(original["UID"]) and int(event["SEQUENCE"]) > int(original["SEQUENCE"])
    assert "ORGANIZER" in event and "ATTENDEE" in event
    for when in (utc(2026, 3, 3, 14, 0), utc(2026, 3, 4, 13, 50), utc(2026, 3, 4, 16, 0)):
        at(rt, clock, when)
    assert titles(console, "ana", "Coming up: Workshop") == 0
    assert titles(console, "ana", "Check in: Workshop") == 0
    assert state(rt, "ana", "workshop") == "skipped"
    assert [e.verb for e in events(rt, "cancelled", "ana")] == ["cancelled"]
    with rt.factory() as session:
        assert live_row(rt).cancelled_at is not None
        assert session.scalar(select(Cohort.name)) == "c1"


def test_a_cancelled_session_takes_no_attendance_from_any_source(rt, clock, console):
    """Voice or meeting presence an adapter still reports, or a lead's mark, records nothing for a session that did
    not take place; the check-in button was refused already."""
    lead_says(console, "session cancel c1 workshop")
    clock.set(utc(2026, 3, 4, 14, 20))
    with transaction(rt.factory) as session:
        sp = session.get(StepProgress, progress(rt, "ana", "workshop").id)
        assert sp is not None
        for source in ("voice", "lead", "checkin"):
            with pytest.raises(InvalidInput, match="was cancelled, so there is no attendance to record"):
                rt.engine.check_in(session, sp, source=source, minutes=20)
    assert events(rt, "attended", "ana") == [] and state(rt, "ana", "workshop") == "skipped"


def test_a_cancelled_session_no_longer_blocks_completion(rt, clock, console):
    """Completion needs every required session by default; cancelling the one a learner could not attend
    completes the program for whoever has done everything else."""
    lesson, done = button(console, "ana", "lesson.done")
    console.press("ana", lesson, done)
    # Ana attends the workshop; the closing session is then cancelled.
    at(rt, clock, utc(2026, 3, 4, 13, 55))
    console.press("ana", invite(console, "ana"), Button("Check in", "session.checkin", str(progress(rt, "ana", "workshop").id)))
    assert enrollment(rt, "ana").status == "active"
    lead_says(console, "session cancel c1 closing")
    assert enrollment(rt, "ana").status == "completed"
    assert enrollment(rt, "bo").status == "active"


def test_learners_are_refused_and_bad_input_gets_one_line(rt, clock, console):
    refused = lead_says(console, "session move c1 workshop 2026-03-12 15:00", user="ana")
    assert "lead" in refused.lower() and "Traceback" not in refused
    assert live_row(rt).start_at == OLD
    bad = lead_says(console, "session move c1 workshop 12/03/2026 15:00")
    assert bad == "'12/03/2026 15:00' is not a date and time; write it as YYYY-MM-DD HH:MM, e.g. 2026-03-12 15:00."
    past = lead_says(console, "session move c1 workshop 2026-03-01 15:00")
    assert "has already passed" in past
    zone = lead_says(console, "session move c1 workshop 2026-03-12 15:00 Mars/Olympus")
    assert zone == "Unknown time zone 'Mars/Olympus'; use an IANA name such as Europe/Berlin."
    lead_says(console, "session cancel c1 workshop")
    again = lead_says(console, "session move c1 workshop 2026-03-12 15:00")
    assert again == "'Workshop' was cancelled; it cannot be moved or cancelled again."


def test_a_time_zone_after_the_time_is_the_zone_of_that_time(rt, clock, console):
    reply = lead_says(console, "session move c1 workshop 2026-03-12 10:00 America/New_York")
    assert live_row(rt).start_at == utc(2026, 3, 12, 14, 0)
    assert "10:00 EDT" in reply


def test_moving_to_the_same_time_is_refused(rt):
    with transaction(rt.factory) as session:
        live = session.scalar(select(LiveSessionRow).where(LiveSessionRow.step_id == "workshop"))
        with pytest.raises(InvalidInput, match="already starts at that time"):
            rt.engine.move_session(session, live, OLD)
