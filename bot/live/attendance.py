"""Attendance from the meeting tool: Zoom, Google Meet and Microsoft Teams participant reports.

Most live sessions happen in a meeting tool, not in Discord voice. Each tool exports who was there:

* **Zoom** (meeting report, participants CSV): ``Name (Original Name), User Email, Join Time, Leave Time,
  Duration (Minutes), Guest``, one row per join, sometimes under a meeting-summary block. Someone who dropped
  and rejoined, or joined from a phone and a laptop at once, has several rows with overlapping times.
* **Google Meet** (attendance report CSV): ``First name, Last name, Email, Duration, Time joined, Time exited``
  (older reports: ``Full Name``), one row per person with the total time in the meeting.
* **Teams** (attendance report, usually UTF-16 and tab-separated): a ``1. Summary`` section, then
  ``2. Participants`` (``Name, First Join, Last Leave, In-Meeting Duration, Email, Participant ID (UPN), Role``)
  and ``3. In-Meeting Activities`` with one row per join.

Rows become segments (join, leave) or totals; a person's segments are merged (overlaps count once), people are
matched to the cohort's learners by email, then by exact name (case and accents ignored), never by a guess, and
whoever reached the session's minimum minutes is recorded as attending, exactly as the check-in button records
it. A file we cannot read gives one line naming the row.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import PurePath
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import replies
from bot.errors import InvalidInput
from bot.live.names import fold
from bot.live.textfiles import decode_upload
from bot.states import EnrollmentStatus
from bot.storage.models import Cohort, CohortLead, Enrollment, LiveSessionRow, Person, StepProgress

if TYPE_CHECKING:
    from bot.journeys.engine import Engine

#: A participant report of a day-long meeting with thousands of joins is well under this.
MAX_BYTES = 5_000_000
FORMATS = ("zoom", "meet", "teams")
TOOL = {"zoom": "Zoom", "meet": "Google Meet", "teams": "Teams"}

_SECTION = re.compile(r"^\s*\d+\.\s+\S")  # Teams: "1. Summary", "2. Participants", "3. In-Meeting Activities"
_DURATION = re.compile(
    r"^(?:(?P<h>\d+(?:\.\d+)?)\s*(?:h|hr|hrs|hour|hours)\b\s*)?(?:(?P<m>\d+(?:\.\d+)?)\s*(?:m|min|mins|minute|minutes)\b\s*)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)\s*(?:s|sec|secs|second|seconds)\b)?$",
    re.I,
)
_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{2})$")
_STAMPS = (
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%y, %I:%M:%S %p",
    "%m/%d/%y, %I:%M %p",
    "%m/%d/%y, %H:%M:%S",
    "%m/%d/%Y, %I:%M:%S %p",
    "%m/%d/%Y, %H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %I:%M:%S %p",
    "%Y/%m/%d %H:%M:%S",
)
_TIMES = ("%I:%M:%S %p", "%I:%M %p", "%H:%M:%S", "%H:%M")
_DAY = datetime(2000, 1, 1)


class ReportError(InvalidInput):
    """A participant report we cannot use. The message is one line: ``file:line: problem``."""


@dataclass(frozen=True)
class ReportRow:
    """One row of a report: a join (with its leave) or a person's total, as the tool wrote it."""

    line: int
    name: str
    email: str | None
    start: datetime | None = None
    end: datetime | None = None
    minutes: float | None = None


@dataclass
class Report:
    """A parsed report. ``segments``: rows are joins to merge (Zoom, Teams activities), else totals (Meet)."""

    format: str
    filename: str
    rows: list[ReportRow] = field(default_factory=list)
    segments: bool = True


def parse_report(data: bytes, filename: str = "report.csv", fmt: str = "auto") -> Report:
    """Read a Zoom, Google Meet or Teams participant report.

    Args:
        data: the file's bytes (UTF-8 with or without a byte-order mark, or UTF-16; comma or tab separated).
        filename: named in every error.
        fmt: ``auto`` (recognised by its columns) or one of :data:`FORMATS`.

    Raises:
        ReportError: an unreadable file, a missing header, or a bad time or duration (naming the row).
    """
    name = PurePath(filename).name or "report.csv"
    if fmt != "auto" and fmt not in FORMATS:
        raise ReportError(f"{name}: unknown format '{fmt}' (use auto, zoom, meet or teams)")
    lines = _decode(data, name).split("\n")
    tables = _tables(lines)
    for kind in [fmt] if fmt != "auto" else list(FORMATS):
        report = _READERS[kind](tables, name)
        if report is not None:
            if not report.rows:
                raise ReportError(f"{name}: the {TOOL[kind]} report lists no participants")
            return report
    wanted = {
        "auto": "a Zoom, Google Meet or Teams participant report",
        "zoom": "a Zoom participants report (columns Name (Original Name), User Email, Join Time, Leave Time)",
        "meet": "a Google Meet attendance report (columns First name, Last name, Email, Duration)",
        "teams": "a Teams attendance report (a Participants section with Name, First Join, Last Leave, "
        "In-Meeting Duration, Email)",
    }[fmt]
    raise ReportError(f"{name}: line 1: this is not {wanted}; no header row of one was found")


def _decode(data: bytes, name: str) -> str:
    if len(data) > MAX_BYTES:
        raise ReportError(
            f"{name}: the file is {len(data) // 1_000_000} MB; a participant report is under 5 MB"
        )
    text = decode_upload(
        data,
        name,
        error=ReportError,
        binary="this looks like a binary file (a spreadsheet or a video), not a CSV report",
        not_utf8="export the report as CSV",
    )
    # Newer exports put a narrow no-break space before AM/PM.
    return text.replace("\u202f", " ").replace("\xa0", " ")


@dataclass
class _Table:
    """A header row and the rows under it, up to a blank line or the next section."""

    line: int  # the header's line number
    title: str  # the section title above it, folded ("" when none)
    columns: dict[str, int]
    rows: list[tuple[int, list[str]]]

    def has(self, *names: str) -> bool:
        return all(n in self.columns for n in names)

    def cell(self, cells: list[str], *names: str) -> str:
        for n in names:
            i = self.columns.get(n)
            if i is not None and i < len(cells):
                return cells[i].strip()
        return ""


def _cells(line: str) -> list[str]:
    return next(csv.reader([line], delimiter="\t" if "\t" in line else ","), [])


def _tables(lines: list[str]) -> list[_Table]:
    out: list[_Table] = []
    title = ""
    current: _Table | None = None
    for number, raw in enumerate(lines, start=1):
        cells = _cells(raw) if raw.strip() else []
        if not any(c.strip() for c in cells):
            current = None
            continue
        if _SECTION.match(raw) and len([c for c in cells if c.strip()]) == 1:
            title, current = " ".join(raw.split()[1:]).casefold(), None
            continue
        if current is None:
            columns = {" ".join(c.split()).casefold(): i for i, c in enumerate(cells) if c.strip()}
            current = _Table(number, title, columns, [])
            out.append(current)
        else:
            current.rows.append((number, cells))
    return out


def _zoom(tables: list[_Table], name: str) -> Report | None:
    table = next((t for t in tables if t.has("join time", "leave time", "duration (minutes)")), None)
    if table is None:
        return None
    report = Report("zoom", name)
    for line, cells in table.rows:
        who = table.cell(cells, "name (original name)", "name", "participant")
        start = _stamp(table.cell(cells, "join time"), name, line, "Join Time")
        end = _stamp(table.cell(cells, "leave time"), name, line, "Leave Time")
        report.rows.append(_segment(name, line, who, table.cell(cells, "user email", "email"), start, end))
    return report


def _meet(tables: list[_Table], name: str) -> Report | None:
    table = next(
        (
            t
            for t in tables
            if t.has("duration") and (t.has("first name") or t.has("full name")) and t.has("email")
        ),
        None,
    )
    if table is None:
        return None
    report = Report("meet", name, segments=False)
    for line, cells in table.rows:
        who = table.cell(cells, "full name") or " ".join(
            p for p in (table.cell(cells, "first name"), table.cell(cells, "last name")) if p
        )
        minutes = _minutes(table.cell(cells, "duration"), name, line, "Duration")
        report.rows.append(ReportRow(line, who, table.cell(cells, "email") or None, minutes=minutes))
    return report


def _teams(tables: list[_Table], name: str) -> Report | None:
    participants = next(
        (t for t in tables if t.has("name", "first join", "last leave", "in-meeting duration")), None
    )
    if participants is None:
        return None
    activities = next(
        (t for t in tables if t.has("name", "join time", "leave time") and "activit" in t.title), None
    )
    if activities is None:
        report = Report("teams", name, segments=False)
        for line, cells in participants.rows:
            minutes = _minutes(
                participants.cell(cells, "in-meeting duration"), name, line, "In-Meeting Duration"
            )
            who, email = (
                participants.cell(cells, "name"),
                participants.cell(cells, "email", "participant id (upn)"),
            )
            report.rows.append(ReportRow(line, who, email or None, minutes=minutes))
        return report
    report = Report("teams", name)
    for line, cells in activities.rows:
        start = _stamp(activities.cell(cells, "join time"), name, line, "Join Time")
        end = _stamp(activities.cell(cells, "leave time"), name, line, "Leave Time")
        who, email = activities.cell(cells, "name"), activities.cell(cells, "email", "participant id (upn)")
        report.rows.append(_segment(name, line, who, email, start, end))
    return report


_READERS = {"zoom": _zoom, "meet": _meet, "teams": _teams}


def _segment(name: str, line: int, who: str, email: str, start: datetime, end: datetime) -> ReportRow:
    if not who and not email:
        raise ReportError(f"{name}:{line}: the row has neither a name nor an email")
    if end < start:
        end += timedelta(days=1) if start.date() == _DAY.date() else timedelta(0)  # a bare time past midnight
        if end < start:
            raise ReportError(
                f"{name}:{line}: the participant leaves ({end:%H:%M}) before joining ({start:%H:%M})"
            )
    return ReportRow(line, who, email or None, start, end)


def _stamp(value: str, name: str, line: int, column: str) -> datetime:
    text = " ".join(value.split())
    if not text:
        raise ReportError(f"{name}:{line}: the {column} cell is empty")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is not None:
        return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    for pattern in _STAMPS:
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    for pattern in _TIMES:
        try:
            clock = datetime.strptime(text.upper(), pattern)
        except ValueError:
            continue
        return _DAY.replace(hour=clock.hour, minute=clock.minute, second=clock.second)
    raise ReportError(
        f"{name}:{line}: '{text[:40]}' in {column} is not a date and time such as 03/12/2026 03:05:10 PM"
    )


def _minutes(value: str, name: str, line: int, column: str) -> float:
    text = " ".join(value.split())
    clock = _CLOCK.match(text)
    if clock:
        hours = int(clock.group(1)) if clock.group(1) else 0
        return hours * 60 + int(clock.group(2)) + int(clock.group(3)) / 60
    try:
        return float(text)  # Zoom writes whole minutes
    except ValueError:
        pass
    m = _DURATION.match(text)
    if text and m and any(m.groupdict().values()):
        parts = {k: float(v) for k, v in m.groupdict().items() if v}
        return parts.get("h", 0.0) * 60 + parts.get("m", 0.0) + parts.get("s", 0.0) / 60
    raise ReportError(
        f"{name}:{line}: '{text[:40]}' in {column} is not a duration such as 52 min or 1h 5m 3s"
    )


def merged_minutes(rows: Iterable[ReportRow], segments: bool) -> tuple[float, int]:
    """A person's minutes in the meeting and how many separate stretches they make.

    Joins are merged first: overlapping or touching segments (a phone and a laptop at once, a reconnect) count
    once. Reports that give a total per row (Meet, a Teams report without its activities section) are summed.
    """
    rows = list(rows)
    if not segments:
        return sum(r.minutes or 0.0 for r in rows), len(rows)
    spans = sorted((r.start, r.end) for r in rows if r.start is not None and r.end is not None)
    merged: list[list[datetime]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return sum((e - s).total_seconds() for s, e in merged) / 60, len(merged)


# ---------------------------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class Candidate:
    """Someone a row may name: a learner of the cohort (``key`` = enrolment id) or one of its leads (``None``)."""

    key: int | None
    name: str
    email: str | None


@dataclass
class Matched:
    """Rows grouped by the learner they name; rows naming nobody, several people, or a lead, listed apart."""

    by_learner: dict[int, list[ReportRow]] = field(default_factory=dict)
    unmatched: list[ReportRow] = field(default_factory=list)
    ambiguous: list[tuple[ReportRow, int]] = field(default_factory=list)
    leads: list[ReportRow] = field(default_factory=list)


def _names(row: ReportRow) -> list[str]:
    """The names a row may go by. Zoom writes ``Display Name (Original Name)`` for a renamed participant."""
    names = [row.name]
    m = re.match(r"^(.*?)\s*\(([^()]+)\)\s*$", row.name)
    if m:
        names += [m.group(2), m.group(1)]
    return [n for n in names if n.strip()]


def match_rows(report: Report, candidates: list[Candidate]) -> Matched:
    """Match each row to one candidate by email, then by exact folded name; never guess between several."""
    by_email: dict[str, set[Candidate]] = {}
    by_name: dict[str, set[Candidate]] = {}
    for c in candidates:
        if c.email:
            by_email.setdefault(c.email.strip().casefold(), set()).add(c)
        if c.name.strip():
            by_name.setdefault(fold(c.name), set()).add(c)
    out = Matched()
    for row in report.rows:
        found = by_email.get((row.email or "").strip().casefold(), set()) if row.email else set()
        if not found:
            for n in _names(row):
                found = by_name.get(fold(n), set())
                if found:
                    break
        learners = {c.key for c in found if c.key is not None}
        if len(learners) > 1:
            out.ambiguous.append((row, len(learners)))
        elif learners:
            out.by_learner.setdefault(learners.pop(), []).append(row)
        elif found:
            out.leads.append(row)
        else:
            out.unmatched.append(row)
    return out


# ---------------------------------------------------------------------------------------------- recording

#: Minutes in the meeting that count as attending when the session step sets no ``checkin.min_minutes``; the
#: same default as Discord voice attendance (``discord.voice_min_minutes``).
DEFAULT_MIN_MINUTES = 10.0


@dataclass
class Imported:
    """What an import did, for the one summary the CLI prints and the lead gets in chat."""

    title: str
    cohort: str
    tool: str
    filename: str
    min_minutes: float
    rows: int
    recorded: list[tuple[str, float, int]] = field(default_factory=list)  # name, minutes, joins
    already: list[tuple[str, float]] = field(default_factory=list)
    below: list[tuple[str, float]] = field(default_factory=list)
    unmatched: list[ReportRow] = field(default_factory=list)
    ambiguous: list[tuple[ReportRow, int]] = field(default_factory=list)
    leads: list[ReportRow] = field(default_factory=list)

    def text(self, esc: Callable[[str], str] = str) -> str:
        """The summary; ``esc`` makes names inert where the text is Markdown (chat)."""

        def row(r: ReportRow) -> str:
            return f"{self.filename}:{r.line} {esc(r.name or r.email or '?')}"

        return replies.attendance_imported(
            title=esc(self.title),
            cohort=esc(self.cohort),
            tool=TOOL[self.tool],
            filename=esc(self.filename),
            minimum=_num(self.min_minutes),
            recorded=[
                f"{esc(n)} ({_num(m)} min" + (f", {j} joins merged)" if j > 1 else ")")
                for n, m, j in self.recorded
            ],
            already=[esc(n) for n, _ in self.already],
            below=[f"{esc(n)} ({_num(m)} min)" for n, m in self.below],
            unmatched=[row(r) for r in self.unmatched],
            ambiguous=[f"{row(r)} ({k} learners)" for r, k in self.ambiguous],
            leads=[row(r) for r in self.leads],
        )


def _num(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"


def import_report(
    engine: Engine,
    session: Session,
    live: LiveSessionRow,
    report: Report,
    *,
    min_minutes: float | None = None,
) -> Imported:
    """Record attendance from a parsed report, in the caller's transaction (so a failure writes nothing).

    Every learner whose merged minutes reach the minimum is recorded through :meth:`Engine.check_in` with the
    tool as ``source`` (``attended`` learning event, the report named in its context). A learner already
    recorded (by the check-in button, voice, a lead or an earlier import) gets no second fact.
    """
    now = engine.clock.now()
    cohort = session.get(Cohort, live.cohort_id)
    assert cohort is not None
    if live.cancelled_at is not None:
        raise InvalidInput(replies.session_was_cancelled(live.title))
    if now < live.start_at:
        raise InvalidInput(replies.session_not_started(live.title))
    if min_minutes is None:
        program = engine.library.program(cohort.program_id) if cohort.program_id in engine.library else None
        configured = program.attendance_minutes(live.step_id) if program is not None else None
        min_minutes = DEFAULT_MIN_MINUTES if configured is None else float(configured)
    learners = session.execute(
        select(Enrollment, Person, StepProgress)
        .join(Person, Person.id == Enrollment.person_id)
        .join(StepProgress, StepProgress.enrollment_id == Enrollment.id)
        .where(
            Enrollment.cohort_id == live.cohort_id,
            StepProgress.step_id == live.step_id,
            Enrollment.status != EnrollmentStatus.DROPPED,
        )
        .order_by(Enrollment.id)
    ).all()
    leads = session.scalars(
        select(Person)
        .join(CohortLead, CohortLead.person_id == Person.id)
        .where(CohortLead.cohort_id == cohort.id)
    ).all()
    candidates = [Candidate(e.id, p.name, p.email) for e, p, _ in learners]
    candidates += [Candidate(None, p.name, p.email) for p in leads]
    matched = match_rows(report, candidates)
    out = Imported(
        live.title,
        cohort.name,
        report.format,
        report.filename,
        min_minutes,
        len(report.rows),
        unmatched=matched.unmatched,
        ambiguous=matched.ambiguous,
        leads=matched.leads,
    )
    extensions = {"report": report.filename, "tool": report.format}
    for enrollment, person, sp in learners:
        rows = matched.by_learner.get(enrollment.id)
        if not rows:
            continue
        minutes, _ = merged_minutes(rows, report.segments)
        minutes = round(minutes, 1)
        name = person.name or person.user_id
        if minutes < min_minutes:
            out.below.append((name, minutes))
        elif engine.check_in(session, sp, source=report.format, minutes=minutes, extensions=extensions):
            out.recorded.append((name, minutes, len(rows)))
        else:
            out.already.append((name, minutes))
    return out
