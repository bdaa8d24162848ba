"""Nudges: reminders on schedule and stopping when done, snooze, pause, auto-pause with Resume, quiet hours."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.adapters.console import ConsoleAdapter
from bot.app import Runtime
from bot.clock import VirtualClock
from tests.conftest import make_cohort
from tests.unit.helpers import (
    build_runtime,
    button,
    deliveries,
    enrollment,
    ephemeral_texts,
    progress,
    titles,
)

PROGRAM = """
id: nudging
title: Nudging
tz: Europe/London
steps:
  - id: read
    title: Read this
    kind: lesson
    body: Something worth reading.
    reminders: {after: [1d, 2d, 3d, 4d]}
  - id: other
    title: Other
    kind: lesson
    body: Another lesson.
    unlock: {day: 1}
    reminders: {enabled: false}
  - id: evening
    title: Evening
    kind: lesson
    body: Unlocks in the evening.
    unlock: {day: 0, at: "21:00"}
    reminders: {enabled: false}
"""


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def runtime(
    db_url: str, tmp_path: Path, clock: VirtualClock, console: ConsoleAdapter, **settings: object
) -> Runtime:
    rt = build_runtime(db_url, tmp_path, clock, console, {"nudging": PROGRAM}, **settings)
    make_cohort(rt, "nudging", [("ana", "Europe/London")])
    return rt


@pytest.fixture
def rt(db_url: str, tmp_path: Path, clock: VirtualClock, console: ConsoleAdapter) -> Iterator[Runtime]:
    runtime_ = runtime(db_url, tmp_path, clock, console, nudges={"auto_pause_after": 10})
    yield runtime_
    runtime_.db.dispose()


def at(rt: Runtime, clock: VirtualClock, when: datetime) -> None:
    clock.set(when)
    rt.step()


def reminders(console: ConsoleAdapter, title: str = "Read this") -> list[str]:
    """Reminders as sent (a button press may have replaced a message since, so look at its first version)."""
    first = [(s.history[0] if s.history else s.message).title for s in console.messages_to("ana")]
    return [t for t in first if t == f"Reminder: {title}"]


def press(console: ConsoleAdapter, action: str, title: str = "Read this"):
    sent, b = button(console, "ana", action, title)
    return console.press("ana", sent, b)


def test_reminders_follow_the_steps_schedule(rt, clock, console):
    at(rt, clock, utc(2026, 3, 2, 9, 30))
    assert titles(console, "ana") == ["Read this"]
    at(rt, clock, utc(2026, 3, 3, 9, 29))
    assert reminders(console) == []
    at(rt, clock, utc(2026, 3, 3, 9, 30))  # 1 day after delivery
    assert len(reminders(console)) == 1
    at(rt, clock, utc(2026, 3, 4, 9, 30))  # 2 days after
    assert len(reminders(console)) == 2
    reminder = [s for s in console.messages_to("ana") if s.message.title == "Reminder: Read this"][-1]
    assert [b.action for b in reminder.message.buttons] == ["lesson.done", "step.snooze", "step.tomorrow"]


def test_reminders_stop_when_the_step_is_done(rt, clock, console):
    at(rt, clock, utc(2026, 3, 2, 9, 30))
    at(rt, clock, utc(2026, 3, 3, 9, 30))
    assert len(reminders(console)) == 1
    press(console, "lesson.done")
    for day in (4, 5, 6, 9, 10):
        at(rt, clock, utc(2026, 3, day, 9, 30))
    assert len(reminders(console)) == 1


def test_a_planned_reminder_is_skipped_when_the_step_is_done_before_sending(rt, clock, console):
    at(rt, clock, utc(2026, 3, 2, 9, 30))
    clock.set(utc(2026, 3, 3, 9, 30))
    rt.tick()  # the reminder is planned...
    [planned] = deliveries(rt, "remind")
    assert planned.state == "pending"
    press(console, "lesson.done")  # ...and the learner finishes the lesson before the sender runs
    result = rt.drain()
    assert result.skipped == 1
    assert [d.state for d in deliveries(rt, "remind")] == ["skipped"]
    assert reminders(console) == []


def test_snooze_button_pushes_the_next_reminder(rt, clock, console):
    at(rt, clock, utc(2026, 3, 2, 9, 30))
    clock.set(utc(2026, 3, 3, 9, 0))  # Tuesday, before the 09:30 reminder
    reply = press(console, "step.snooze")
    assert reply.ephemeral.body == "Snoozed. I'll remind you again around Tue 3 Mar, 11:00 GMT."
    at(rt, clock, utc(2026, 3, 3, 9, 30))
    at(rt, clock, utc(2026, 3, 3, 10, 59))
    assert reminders(console) == []
    at(rt, clock, utc(2026, 3, 3, 11, 0))
    assert len(reminders(console)) == 1  # one reminder, not one per reminder it replaced
    at(rt, clock, utc(2026, 3, 4, 9, 30))  # the schedule continues afterwards
    assert len(reminders(console)) == 2


def test_learn_snooze_command_pushes_reminders(rt, clock, console):
    at(rt, clock, utc(2026, 3, 2, 9, 30))
    clock.set(utc(2026, 3, 3, 9, 0))
    reply = console.command("ana", "snooze 2h")
    assert reply.ephemeral.body == "Reminders snoozed until Tue 3 Mar, 11:00 GMT."
    assert progress(rt, "ana", "read").snoozed_until == utc(2026, 3, 3, 11, 0)
    at(rt, clock, utc(2026, 3, 3, 9, 30))
    assert reminders(console) == []
    at(rt, clock, utc(2026, 3, 3, 11, 0))
    assert len(reminders(console)) == 1


def test_long_snooze_over_several_reminders_sends_one(rt, clock, console):
    at(rt, clock, utc(2026, 3, 2, 9, 30))
    clock.set(utc(2026, 3, 2, 10, 0))
    console.command("ana", "snooze 3d")  # until Thursday 10:00: covers the Tuesday and Wednesday reminders
    for when in (utc(2026, 3, 3, 9, 30), utc(2026, 3, 4, 9, 30), utc(2026, 3, 5, 9, 59)):
        at(rt, clock, when)
    assert reminders(console) == []
    at(rt, clock, utc(2026, 3, 5, 10, 0))
    assert len(reminders(console)) == 1


def test_every_snooze_brings_its_own_reminder(rt, clock, console):
    """Snoozed reminders already sent keep their outbox keys; a later snooze must pick a key none of them used,
    or its reminder would be deduplicated away."""
    at(rt, clock, utc(2026, 3, 2, 9, 30))
    for sent, hour in enumerate((10, 12, 14), start=1):
        clock.set(utc(2026, 3, 3, hour, 0))
        console.command("ana", "snooze 1h")
        at(rt, clock, utc(2026, 3, 3, hour + 1, 0))
        assert len(reminders(console)) == sent
    read = progress(rt, "ana", "read").id
    assert [d.key for d in deliveries(rt, "remind") if d.progress_id == read] == [
        f"remind:{read}:100",
        f"remind:{read}:101",
        f"remind:{read}:102",
    ]


def test_snooze_with_a_bad_duration_is_explained(rt, console):
    reply = console.command("ana", "snooze soon")
    assert reply.ephemeral.body == "'soon' is not a duration; use forms like 15m, 2h, 1h30m, 3d, 1w"


def test_pause_holds_everything_and_loses_nothing(rt, clock, console):
    at(rt, clock, utc(2026, 3, 2, 9, 30))
    clock.set(utc(2026, 3, 2, 10, 0))
    reply = console.command("ana", "pause 2026-03-05")
    assert reply.ephemeral.body.startswith("Paused until Thu 5 Mar, 00:00 GMT. Nothing is lost")
    before = len(console.messages_to("ana"))
    for when in (
        utc(2026, 3, 2, 21, 0),
        utc(2026, 3, 3, 9, 30),
        utc(2026, 3, 3, 12, 0),
        utc(2026, 3, 4, 9, 30),
    ):
        at(rt, clock, when)
    assert len(console.messages_to("ana")) == before  # nothing at all during the pause
    at(rt, clock, utc(2026, 3, 5, 8, 59))
    assert len(console.messages_to("ana")) == before
    at(rt, clock, utc(2026, 3, 5, 9, 0))  # Thursday 09:00: the lessons that came due meanwhile arrive
    arrived = titles(console, "ana")[before:]
    assert sorted(arrived) == ["Evening", "Other"]
    assert progress(rt, "ana", "other").state == "open"


def test_resume_ends_a_pause_early(rt, clock, console):
    at(rt, clock, utc(2026, 3, 2, 9, 30))
    console.command("ana", "pause 2w")
    at(rt, clock, utc(2026, 3, 3, 9, 30))
    assert "Other" not in titles(console, "ana")
    assert console.command("ana", "resume").ephemeral.body == "Welcome back! Everything is running again."
    at(rt, clock, utc(2026, 3, 3, 9, 45))
    assert "Other" in titles(console, "ana")


def test_pause_in_the_past_is_refused(rt, clock, console):
    reply = console.command("ana", "pause 2026-03-01")
    assert reply.ephemeral.body == "That date is in the past."


@pytest.fixture
def rt2(db_url: str, tmp_path: Path, clock: VirtualClock, console: ConsoleAdapter) -> Iterator[Runtime]:
    runtime_ = runtime(db_url, tmp_path, clock, console, nudges={"auto_pause_after": 2})
    yield runtime_
    runtime_.db.dispose()


def test_auto_pause_after_ignored_reminders_and_resume(rt2, clock, console):
    rt = rt2
    at(rt, clock, utc(2026, 3, 2, 9, 30))
    at(rt, clock, utc(2026, 3, 3, 9, 30))  # reminder 1, ignored
    assert enrollment(rt, "ana").auto_paused is False
    at(rt, clock, utc(2026, 3, 4, 9, 30))  # reminder 2, ignored: that is the limit
    at(rt, clock, utc(2026, 3, 4, 9, 31))  # the notice is queued just behind the reminder
    e = enrollment(rt, "ana")
    assert (e.auto_paused, e.nudges_ignored) == (True, 2)
    notices = [s for s in console.messages_to("ana") if s.message.title == "Reminders paused"]
    assert len(notices) == 1
    assert [b.action for b in notices[0].message.buttons] == ["enrollment.resume"]
    at(rt, clock, utc(2026, 3, 5, 9, 30))  # reminder 3 is held
    assert len(reminders(console)) == 2
    assert len([s for s in console.messages_to("ana") if s.message.title == "Reminders paused"]) == 1
    reply = console.press("ana", notices[0], notices[0].message.buttons[0])
    assert reply.ephemeral.body == "Welcome back! Reminders are on again."
    e = enrollment(rt, "ana")
    assert (e.auto_paused, e.nudges_ignored) == (False, 0)
    at(rt, clock, utc(2026, 3, 6, 9, 30))  # reminder 4 arrives again
    assert len(reminders(console)) == 3


def test_any_action_resets_the_ignored_count(rt2, clock, console):
    rt = rt2
    at(rt, clock, utc(2026, 3, 2, 9, 30))
    at(rt, clock, utc(2026, 3, 3, 9, 30))  # reminder 1
    assert enrollment(rt, "ana").nudges_ignored == 1
    clock.set(utc(2026, 3, 3, 10, 0))
    console.command("ana", "snooze 1h")
    assert enrollment(rt, "ana").nudges_ignored == 0
    at(rt, clock, utc(2026, 3, 3, 11, 0))  # the snoozed reminder
    at(rt, clock, utc(2026, 3, 4, 9, 30))  # reminder 2: two ignored since the snooze
    assert enrollment(rt, "ana").auto_paused is True
    assert ephemeral_texts(console, "ana")[0].startswith("Reminders snoozed until")


@pytest.fixture
def rt_allday(db_url: str, tmp_path: Path, clock: VirtualClock, console: ConsoleAdapter) -> Iterator[Runtime]:
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    runtime_ = runtime(
        db_url,
        tmp_path,
        clock,
        console,
        working_hours={"start": "00:00", "end": "23:59", "days": days},
        quiet_hours={"start": "20:00", "end": "08:00"},
    )
    yield runtime_
    runtime_.db.dispose()


def test_quiet_hours_hold_an_evening_unlock_until_morning(rt_allday, clock, console):
    rt = rt_allday
    at(rt, clock, utc(2026, 3, 2, 21, 0))
    at(rt, clock, utc(2026, 3, 3, 7, 59))
    assert "Evening" not in titles(console, "ana")
    at(rt, clock, utc(2026, 3, 3, 8, 0))
    assert "Evening" in titles(console, "ana")


def test_sender_defers_a_message_that_becomes_due_in_quiet_hours(rt_allday, clock, console):
    rt = rt_allday
    clock.set(utc(2026, 3, 2, 19, 59))
    rt.tick()  # the first lesson is planned just before quiet hours...
    clock.set(utc(2026, 3, 2, 20, 0))
    result = rt.drain()  # ...and the sender only gets to it once they have begun
    assert (result.sent, result.deferred) == (0, 1)
    [d] = deliveries(rt, "lesson")
    assert (d.state, d.due_at, d.attempts) == ("pending", utc(2026, 3, 3, 8, 0), 0)
    at(rt, clock, utc(2026, 3, 3, 8, 0))
    assert titles(console, "ana")[0] == "Read this"
