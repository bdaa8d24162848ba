"""Timing warnings for ``content check``: what is valid but will not happen the way the author wrote it.

Errors stop a program from loading; these do not. They say when the configured week changes an authored time:

* an ``unlock.at`` (or ``defaults.unlock_at``) outside ``working_hours``: the step arrives when working hours
  start (or the next working day), not at the authored time;
* an unlock that falls on a non-working day for a cohort starting on a Monday: it arrives on the next working day;
* pre-work that reaches learners in some zone only when (or after) its session has started. The rule in
  :mod:`bot.journeys.validate` compares the cohort-relative ``(day, at)`` of both, but pre-work unlocks at a
  *learner-local* time and the session starts in the cohort's zone, so a learner eight hours west may get the
  pre-work as the session begins. Here both are compared as instants, through the same schedule the tick runs
  (:mod:`bot.journeys.timetable`), for learners in :data:`SAMPLE_ZONES` and the program's own zone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, time, timedelta

from bot.config import Settings
from bot.journeys.model import AnyStep, Program, SessionStep
from bot.journeys.timetable import program_timetable
from bot.journeys.validate import Loc, Problem, SourceMap

#: The learner zones the pre-work rule is checked for, west to east, besides the program's own zone.
SAMPLE_ZONES = ("America/Los_Angeles", "America/New_York", "Europe/London", "Asia/Kolkata", "Asia/Tokyo")
#: A reference cohort start (a Monday) for the day-of-week warnings and the pre-work comparison.
MONDAY = date(2026, 3, 2)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def timing_warnings(program: Program, source: SourceMap, settings: Settings) -> list[Problem]:
    """Every timing warning for a valid ``program``; each message starts with ``warning:``."""
    return [
        *_outside_working_hours(program, source, settings),
        *_non_working_days(program, source, settings),
        *_prework_after_session(program, source, settings),
    ]


def _warn(source: SourceMap, loc: Loc, message: str) -> Problem:
    return Problem(source.file, source.line(loc), f"warning: {message}")


def _authored(program: Program, source: SourceMap) -> Iterator[tuple[int, AnyStep]]:
    """The steps written in ``steps:`` (not those the loader adds, such as the evaluation's)."""
    for i, step in enumerate(program.steps):
        if ("steps", i) in source.keys:
            yield i, step


def _outside(at: time, settings: Settings) -> bool:
    wh = settings.working_hours
    return not wh.start <= at < wh.end


def _outside_working_hours(program: Program, source: SourceMap, settings: Settings) -> Iterator[Problem]:
    wh = settings.working_hours
    hours = f"working_hours {wh.start:%H:%M}-{wh.end:%H:%M}"
    default = program.defaults.unlock_at
    if _outside(default, settings):
        yield _warn(
            source,
            ("defaults", "unlock_at"),
            f"defaults.unlock_at {default:%H:%M} is outside {hours}: steps without their own 'at' arrive at "
            f"{wh.start:%H:%M} (or the next working day), not at {default:%H:%M}",
        )
    for i, step in _authored(program, source):
        at = step.unlock.at
        if at is not None and _outside(at, settings) and not isinstance(step, SessionStep):
            yield _warn(
                source,
                ("steps", i, "unlock", "at"),
                f"step '{step.id}' unlocks at {at:%H:%M}, outside {hours}: it arrives at {wh.start:%H:%M} "
                "(or the next working day) instead",
            )


def _non_working_days(program: Program, source: SourceMap, settings: Settings) -> Iterator[Problem]:
    weekdays = settings.working_hours.weekdays
    for i, step in _authored(program, source):
        if isinstance(step, SessionStep) or step.unlock.from_ != "cohort" or "unlock" not in step.model_fields_set:
            continue
        weekday = (MONDAY + timedelta(days=step.unlock.day)).weekday()
        if weekday not in weekdays:
            yield _warn(
                source,
                ("steps", i, "unlock", "day"),
                f"step '{step.id}' unlocks on day {step.unlock.day}, a {_DAYS[weekday]} for a cohort starting on a "
                "Monday, which is not a working day: it arrives on the next working day (its due time counts "
                "from then); move it to a working day, or check 'blendwise content timeline'",
            )


def _prework_after_session(program: Program, source: SourceMap, settings: Settings) -> Iterator[Problem]:
    if not any(isinstance(s, SessionStep) and s.prework for s in program.steps):
        return
    zones = list(dict.fromkeys((*SAMPLE_ZONES, program.tz)))
    timelines = program_timetable(program, settings, MONDAY, None, zones)
    index = {step.id: i for i, step in enumerate(program.steps)}
    for i, step in _authored(program, source):
        if not isinstance(step, SessionStep):
            continue
        ends = timelines[0].rows[i].due  # a session is due when it ends
        if ends is None:
            continue
        starts = ends - step.duration
        for k, name in enumerate(step.prework):
            if name not in index:
                continue
            late = [tl.tz for tl in timelines if (d := tl.rows[index[name]].delivered) is not None and d >= starts]
            if late:
                yield _warn(
                    source,
                    ("steps", i, "prework", k),
                    f"pre-work '{name}' reaches learners in {', '.join(late)} only when session '{step.id}' has "
                    "already started (the session starts at one instant for everyone, the pre-work at a local "
                    "time in each learner's zone); unlock it a day earlier",
                )
