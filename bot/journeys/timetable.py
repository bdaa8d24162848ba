"""``blendwise content timeline``: when each step unlocks, is delivered and is due, for learners in sample zones.

Nothing here schedules: the timetable is what enrolment would write (:func:`~bot.journeys.enrolment.build_template`,
the function that materialises every real learner's timeline) for a cohort that is built but never saved, with
steps that wait on prerequisites released the way :mod:`bot.journeys.timeline` releases them, assuming each
learner finishes a step when it arrives. So the author sees the schedule the tick will run, not a second
implementation of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from bot.clock import VirtualClock
from bot.config import Settings
from bot.journeys.context import Context
from bot.journeys.enrolment import build_template, step_agenda
from bot.journeys.library import Library
from bot.journeys.model import Program, SessionStep
from bot.journeys.people import zone_window
from bot.journeys.timeline import due_after, live_row, reminder_offsets
from bot.states import AgendaAction
from bot.storage.models import Cohort
from bot.storage.types import from_ms
from bot.timewindow import Window, local_instant, zone

#: The sample learners' zones when ``--zones`` is not given.
DEFAULT_ZONES = ("Europe/London", "America/New_York", "Asia/Tokyo")

WEEKEND, NIGHT, OVERDUE = "weekend", "night", "overdue-on-arrival"


@dataclass
class Row:
    """One step for one sample learner. ``delivered`` is None when the step never arrives (a blocked chain)."""

    step_id: str
    kind: str
    unlock: datetime
    delivered: datetime | None
    due: datetime | None
    flags: list[str] = field(default_factory=list)


@dataclass
class ZoneTimeline:
    tz: str
    rows: list[Row]


def timetable(
    library: Library, settings: Settings, program_id: str, start: date, tz: str | None, zones: list[str]
) -> list[ZoneTimeline]:
    """The timeline of ``program_id`` for a cohort starting on ``start`` in ``tz``, for one learner per zone."""
    return program_timetable(library.program(program_id), settings, start, tz, zones)


def program_timetable(
    program: Program, settings: Settings, start: date, tz: str | None, zones: list[str]
) -> list[ZoneTimeline]:
    """:func:`timetable` for a program that is not (or not yet) in a library, such as one being checked."""
    cohort = Cohort(id=0, name="timeline", program_id=program.id, start_date=start, tz=tz or program.tz)
    sessions = {step.id: live_row(step, cohort) for step in program.sessions}
    # Enrolled a week before the start, at 09:00 in the cohort's zone: the usual way a cohort is set up.
    enrolled = local_instant(start - timedelta(days=7), time(9, 0), cohort.tz)
    ctx = Context(library=Library({}), settings=settings, clock=VirtualClock(enrolled))
    return [
        ZoneTimeline(zone_name, _rows(ctx, program, cohort, sessions, zone_name, enrolled)) for zone_name in zones
    ]


def _rows(
    ctx: Context, program: Program, cohort: Cohort, sessions: dict, tz: str, enrolled: datetime
) -> list[Row]:
    template = build_template(ctx, 0, tz, program, cohort, sessions, enrolled)
    window = zone_window(ctx.settings, tz)
    delivered: dict[str, datetime | None] = {
        step_id: from_ms(fire) if fire is not None else None
        for _, step_id, action, _, fire, _ in template.agenda
        if action == AgendaAction.DELIVER
    }
    rows: list[Row] = []
    for _, step_id, kind, _, _, waiting_on, unlock_ms, due_ms in template.steps:
        step = program.step(step_id)
        unlock = from_ms(unlock_ms)
        due = from_ms(due_ms) if due_ms is not None else None
        if waiting_on:
            # Released when its last prerequisite is done; here, the moment that prerequisite arrives.
            before = [delivered.get(p) for p in step.unlock.after]
            if all(b is not None for b in before):
                released = max(b for b in before if b is not None)
                card = step_agenda(step, reminder_offsets(ctx, step, program), unlock, window, released)
                delivered[step_id] = card[0][2]
                if not isinstance(step, SessionStep) and card[0][2] is not None:
                    due = due_after(step, card[0][2], window)
        arrives = delivered.get(step_id)
        rows.append(Row(step_id, kind, unlock, arrives, due, _flags(window, arrives, due)))
    return rows


def _flags(window: Window, delivered: datetime | None, due: datetime | None) -> list[str]:
    if delivered is None:
        return []
    flags = []
    local = delivered.astimezone(zone(window.tz))
    if local.weekday() not in window.weekdays:
        flags.append(WEEKEND)
    if not window.contains(delivered) and local.weekday() in window.weekdays:
        flags.append(NIGHT)
    if due is not None and due <= delivered:
        flags.append(OVERDUE)
    return flags


def render(program: Program, start: date, tz: str, timelines: list[ZoneTimeline]) -> list[str]:
    """Plain lines (no markup) for the terminal: one table per zone, local times, flags at the end of a line."""
    lines = [f"{program.id}: cohort starting {start.isoformat()} ({tz})"]
    for tl in timelines:
        lines += ["", f"Learner in {tl.tz}", f"  {'step':<28} {'kind':<10} {'unlocks':<16} {'delivered':<16} due"]
        for row in tl.rows:
            cells = [_local(row.unlock, tl.tz), _local(row.delivered, tl.tz), _local(row.due, tl.tz)]
            flags = f"  [{', '.join(row.flags)}]" if row.flags else ""
            lines.append(f"  {row.step_id:<28} {row.kind:<10} {cells[0]:<16} {cells[1]:<16} {cells[2]}{flags}")
    flagged = sum(1 for tl in timelines for row in tl.rows if row.flags)
    lines += ["", f"{flagged} flagged deliveries." if flagged else "No weekend, night or overdue-on-arrival delivery."]
    return lines


def _local(value: datetime | None, tz: str) -> str:
    if value is None:
        return "-"
    return f"{value.astimezone(zone(tz)):%a %d %b %H:%M}"
