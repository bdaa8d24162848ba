"""The unified report: asynchronous completion and live attendance in one view.

One row per learner per program, derived from the state tables and the learning-event log. The CSV columns are
a stable contract documented in ``docs/reports.md``; add columns at the end, never rename or reorder them.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.journeys.engine import Engine
from bot.journeys.model import PollStep, Program
from bot.states import EnrollmentStatus, StepKind, StepState, Verb
from bot.storage.events import object_id
from bot.storage.models import (
    Attendance,
    Cohort,
    Enrollment,
    LearningEvent,
    LiveSessionRow,
    Person,
    StepProgress,
)

CSV_COLUMNS = [
    "person_id",
    "platform",
    "user_id",
    "name",
    "email",
    "manager",
    "program_id",
    "program",
    "cohort",
    "enrolled_at",
    "status",
    "steps_completed",
    "steps_total",
    "required_completed",
    "required_total",
    "on_time",
    "overdue",
    "quiz_average",
    "quizzes_passed",
    "quizzes_total",
    "sessions_attended",
    "sessions_missed",
    "sessions_caught_up",
    "sessions_total",
    "sessions_not_applicable",
    "replies",
    "retention",
    "last_activity",
    "completed_at",
]


@dataclass
class LearnerRow:
    person_id: int
    platform: str
    user_id: str
    name: str
    email: str
    manager: str
    program_id: str
    program: str
    cohort: str
    enrolled_at: str
    status: str
    steps_completed: int
    steps_total: int
    required_completed: int
    required_total: int
    on_time: int
    overdue: int
    quiz_average: float | None
    quizzes_passed: int
    quizzes_total: int
    sessions_attended: int
    sessions_missed: int
    sessions_caught_up: int
    sessions_total: int
    sessions_not_applicable: int
    replies: int
    retention: float | None
    last_activity: str
    completed_at: str


@dataclass
class CohortSummary:
    cohort: str
    program: str
    learners: int
    completed: int
    completion_rate: float
    attendance_rate: float
    funnel: list[tuple[str, int]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    weekly_active: list[tuple[str, int]] = field(default_factory=list)
    #: The end-of-program evaluation: one entry a question (level, question, responses, counts per option).
    evaluation: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Filters:
    cohort: str | None = None
    program: str | None = None
    manager: str | None = None
    person: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    workspace: str | None = None
    #: Exact people (ids), for callers that already resolved them: the manager digest passes the manager's reports.
    person_ids: list[int] | None = None


@dataclass
class Report:
    generated_at: datetime
    learners: list[LearnerRow]
    cohorts: list[CohortSummary]

    def to_json(self) -> str:
        return json.dumps(
            {
                "generated_at": self.generated_at.isoformat(),
                "learners": [asdict(r) for r in self.learners],
                "cohorts": [asdict(c) for c in self.cohorts],
            },
            indent=2,
        )

    def to_csv(self, *, bom: bool = False) -> str:
        """The learner rows as CSV, every text cell neutralised against formula injection (:func:`csv_cell`).

        Args:
            bom: start with a UTF-8 byte order mark, so spreadsheet programs read accented names as UTF-8 (for a
                file; a pipe into another program is better off without it).
        """
        buf = io.StringIO()
        if bom:
            buf.write("\ufeff")
        # CRLF (RFC 4180) also makes the writer quote a cell holding a bare CR, which "\n" alone would not.
        writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        for row in self.learners:
            data = asdict(row)
            writer.writerow({k: csv_cell(data[k]) for k in CSV_COLUMNS})
        return buf.getvalue()


#: OWASP's CSV-injection rule: a cell starting with one of these is a formula (or becomes one) in a spreadsheet.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """One CSV cell: ``None`` is empty, and text that a spreadsheet would run as a formula (a name such as
    ``=HYPERLINK(...)`` from a roster or a platform profile) gets a leading ``'``, which makes it text.

    Numbers pass unchanged: they are ours, never a person's, and a quote would stop them being numbers.
    """
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def _person_match(p: Person, needle: str) -> bool:
    return needle in (p.user_id, p.name, p.email or "", str(p.id))


def build_report(session: Session, engine: Engine, filters: Filters | None = None) -> Report:
    f = filters or Filters()
    now = engine.clock.now()
    rows = _selected_enrolments(session, engine, f)
    facts = _load_facts(session, [e.id for e, _, _ in rows])
    learners = [_learner_row(session, engine, now, e, p, c, facts) for e, p, c in rows]
    cohorts = _cohort_summaries(session, engine, list(rows), facts.progress, facts.attendance, learners)
    return Report(now, learners, cohorts)


def _selected_enrolments(session: Session, engine: Engine, f: Filters) -> list[Any]:
    """The (enrolment, person, cohort) rows the filters keep, in report order.

    Filters that map to columns narrow the query; manager and person matching run in Python because they accept
    any of a person's identifiers.
    """
    q = (
        select(Enrollment, Person, Cohort)
        .join(Person, Person.id == Enrollment.person_id)
        .join(Cohort, Cohort.id == Enrollment.cohort_id)
        .order_by(Cohort.name, Person.name)
    )
    if f.cohort:
        q = q.where(Cohort.name == f.cohort)
    if f.program:
        q = q.where(Enrollment.program_id == f.program)
    if f.workspace:
        q = q.where(Cohort.workspace == f.workspace)
    if f.since:
        q = q.where((Enrollment.last_activity_at >= f.since) | (Enrollment.enrolled_at >= f.since))
    if f.until:
        q = q.where(Enrollment.enrolled_at <= f.until)
    if f.person_ids is not None:
        q = q.where(Person.id.in_(f.person_ids))
    rows: list[Any] = list(session.execute(q).all())
    if f.manager:
        managers = [p for p in session.scalars(select(Person)) if _person_match(p, f.manager)]
        allowed = {r.id for m in managers for r in engine.reports_of(session, m)}
        rows = [r for r in rows if r[1].id in allowed]
    if f.person:
        rows = [r for r in rows if _person_match(r[1], f.person)]
    return rows


@dataclass
class _Facts:
    """Per-enrolment facts loaded in chunks, so building the rows needs no query per learner for them."""

    progress: dict[int, list[StepProgress]] = field(default_factory=lambda: defaultdict(list))
    attendance: dict[int, list[Attendance]] = field(default_factory=lambda: defaultdict(list))
    replies: Counter[int] = field(default_factory=Counter)
    caught_up: Counter[int] = field(default_factory=Counter)
    last_event: dict[int, datetime] = field(default_factory=dict)
    retention: dict[int, float] = field(default_factory=dict)


def _load_facts(session: Session, enrollment_ids: list[int]) -> _Facts:
    """Progress, attendance and event counts for the selected enrolments, a few set-wise queries per 500."""
    facts = _Facts()
    for chunk in _chunks(enrollment_ids, 500):
        for sp in session.scalars(select(StepProgress).where(StepProgress.enrollment_id.in_(chunk))):
            facts.progress[sp.enrollment_id].append(sp)
        # A cancelled session is nobody's to attend: it leaves every learner's attendance figures.
        for a in session.scalars(
            select(Attendance)
            .join(LiveSessionRow, LiveSessionRow.id == Attendance.session_id)
            .where(Attendance.enrollment_id.in_(chunk), LiveSessionRow.cancelled_at.is_(None))
        ):
            facts.attendance[a.enrollment_id].append(a)
        for eid, verb, n, last in session.execute(
            select(LearningEvent.enrollment_id, LearningEvent.verb, func.count(), func.max(LearningEvent.ts))
            .where(LearningEvent.enrollment_id.in_(chunk))
            .group_by(LearningEvent.enrollment_id, LearningEvent.verb)
        ):
            if eid is None:
                continue
            if verb == Verb.REPLIED:
                facts.replies[eid] = n
            if verb == Verb.CAUGHT_UP:
                facts.caught_up[eid] = n
            # "Last activity" means something the learner did, not something we sent them.
            if verb not in (Verb.DELIVERED, Verb.MISSED) and last is not None and (
                eid not in facts.last_event or last > facts.last_event[eid]
            ):
                facts.last_event[eid] = last
        facts.retention.update(_retention(session, chunk))
    return facts


def _learner_row(
    session: Session, engine: Engine, now: datetime, e: Enrollment, p: Person, c: Cohort, facts: _Facts
) -> LearnerRow:
    """One learner's row: the CSV contract's columns computed from the loaded facts."""
    caught_up, last_event = facts.caught_up, facts.last_event
    program = engine.library.program(e.program_id) if e.program_id in engine.library else None
    sps = facts.progress[e.id]
    required_ids = {s.id for s in program.steps if s.required and s.kind != StepKind.SESSION} if program else set()
    quiz_scores = [sp.score for sp in sps if sp.kind == StepKind.QUIZ and sp.score is not None]
    att = facts.attendance[e.id]
    overdue = sum(1 for sp in sps if sp.state == StepState.OPEN and sp.due_at is not None and sp.due_at < now)
    missed = sum(1 for sp in sps if sp.kind == StepKind.SESSION and sp.state == StepState.MISSED)
    # Sessions that had started before the learner enrolled: out of their steps and sessions ("n/a").
    na = {sp.step_id for sp in sps if sp.state == StepState.NOT_APPLICABLE}
    paused = e.auto_paused or (p.paused_until is not None and p.paused_until > now)
    status = (
        "done"
        if e.status == EnrollmentStatus.COMPLETED
        else "paused"
        if paused
        else "behind"
        if overdue or missed > caught_up[e.id]
        else "on track"
    )
    manager = session.get(Person, p.manager_id) if p.manager_id else None
    return LearnerRow(
        person_id=p.id,
        platform=p.platform,
        user_id=p.user_id,
        name=p.name,
        email=p.email or "",
        manager=manager.name if manager else "",
        program_id=e.program_id,
        program=program.title if program else e.program_id,
        cohort=c.name,
        enrolled_at=_iso(e.enrolled_at),
        status=status,
        steps_completed=sum(1 for sp in sps if sp.state == StepState.DONE),
        steps_total=len(sps) - len(na),
        required_completed=sum(1 for sp in sps if sp.step_id in required_ids and sp.state == StepState.DONE),
        required_total=len(required_ids),
        on_time=sum(
            1 for sp in sps if sp.state == StepState.DONE and sp.done_at and (sp.due_at is None or sp.done_at <= sp.due_at)
        ),
        overdue=overdue,
        quiz_average=round(100 * sum(quiz_scores) / len(quiz_scores), 1) if quiz_scores else None,
        quizzes_passed=sum(1 for sp in sps if sp.kind == StepKind.QUIZ and sp.passed),
        quizzes_total=sum(1 for sp in sps if sp.kind == StepKind.QUIZ),
        sessions_attended=sum(1 for a in att if a.attended_at is not None and a.source != "catch_up"),
        sessions_missed=missed,
        sessions_caught_up=caught_up[e.id],
        sessions_total=len(att) - len(na),
        sessions_not_applicable=len(na),
        replies=facts.replies[e.id],
        retention=facts.retention.get(e.id),
        last_activity=_iso(last_event.get(e.id) or e.last_activity_at),
        completed_at=_iso(e.completed_at),
    )


def _chunks(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)] or []


def _retention(session: Session, enrollment_ids: list[int]) -> dict[int, float]:
    """Share of reinforcement questions answered correctly, per enrolment (spaced-repetition retention)."""
    from bot.storage.models import QuizAnswer

    out: dict[int, float] = {}
    rows = session.execute(
        select(StepProgress.enrollment_id, func.count(), func.sum(func.cast(QuizAnswer.correct, _int_type())))
        .join(QuizAnswer, QuizAnswer.progress_id == StepProgress.id)
        .where(StepProgress.enrollment_id.in_(enrollment_ids), QuizAnswer.reinforcement.is_(True))
        .group_by(StepProgress.enrollment_id)
    ).all()
    for eid, n, correct in rows:
        if n:
            out[eid] = round(100 * float(correct or 0) / n, 1)
    return out


def _evaluation(session: Session, program: Program, enrollment_ids: list[int]) -> list[dict[str, Any]]:
    """Answers to the program's evaluation, from the ``voted`` facts of its evaluation polls (latest vote each)."""
    questions = [s for s in program.steps if isinstance(s, PollStep) and s.level is not None]
    if not questions or not enrollment_ids:
        return []
    wanted = {object_id(program.id, q.id): q for q in questions}
    latest: dict[tuple[str, int], str] = {}
    for ids in _chunks(enrollment_ids, 1000):
        for oid, enrollment_id, result in session.execute(
            select(LearningEvent.object_id, LearningEvent.enrollment_id, LearningEvent.result)
            .where(
                LearningEvent.enrollment_id.in_(ids),
                LearningEvent.verb == Verb.VOTED,
                LearningEvent.object_id.in_(list(wanted)),
            )
            .order_by(LearningEvent.id)
        ):
            if enrollment_id is not None and result and "response" in result:
                latest[(oid, enrollment_id)] = str(result["response"])
    out = []
    for oid, q in wanted.items():
        answers = Counter(v for (o, _), v in latest.items() if o == oid)
        out.append(
            {
                "id": q.id,
                "level": q.level,
                "question": q.question,
                "responses": sum(answers.values()),
                "options": [{"label": label, "count": answers.get(str(i), 0)} for i, label in enumerate(q.options)],
            }
        )
    return out


def _int_type() -> Any:
    from sqlalchemy import Integer

    return Integer()


def _cohort_summaries(
    session: Session,
    engine: Engine,
    rows: list[Any],
    progress: dict[int, list[StepProgress]],
    attendance: dict[int, list[Attendance]],
    learners: list[LearnerRow],
) -> list[CohortSummary]:
    by_cohort: dict[int, list[Enrollment]] = defaultdict(list)
    cohorts: dict[int, Cohort] = {}
    for e, _, c in rows:
        by_cohort[c.id].append(e)
        cohorts[c.id] = c
    out = []
    for cid, enrollments in by_cohort.items():
        c = cohorts[cid]
        program = engine.library.program(c.program_id) if c.program_id in engine.library else None
        funnel: list[tuple[str, int]] = []
        if program:
            for step in program.steps:
                done = sum(
                    1 for e in enrollments for sp in progress[e.id] if sp.step_id == step.id and sp.state == StepState.DONE
                )
                funnel.append((step.title, done))
        sessions = []
        att_total = att_yes = 0
        for live in session.scalars(
            select(LiveSessionRow)
            .where(LiveSessionRow.cohort_id == cid, LiveSessionRow.cancelled_at.is_(None))
            .order_by(LiveSessionRow.start_at)
        ):
            rows_for = [a for e in enrollments for a in attendance[e.id] if a.session_id == live.id]
            attended = sum(1 for a in rows_for if a.attended_at is not None and a.source != "catch_up")
            going = sum(1 for a in rows_for if a.rsvp == "yes")
            sessions.append(
                {
                    "title": live.title,
                    "start": _iso(live.start_at),
                    "invited": len(rows_for),
                    "rsvp_yes": going,
                    "attended": attended,
                    "rate": round(100 * attended / len(rows_for), 1) if rows_for else 0.0,
                }
            )
            att_total += len(rows_for)
            att_yes += attended
        weekly: Counter[date] = Counter()
        ids = [e.id for e in enrollments]
        seen: set[tuple[date, int]] = set()
        for pid, ts in session.execute(
            select(LearningEvent.person_id, LearningEvent.ts).where(
                LearningEvent.enrollment_id.in_(ids),
                LearningEvent.verb.in_((Verb.COMPLETED, Verb.ANSWERED, Verb.ATTENDED, Verb.REPLIED, Verb.REFLECTED, Verb.VOTED)),
            )
        ):
            week = ts.date() - timedelta(days=ts.weekday())
            if (week, pid) not in seen:
                seen.add((week, pid))
                weekly[week] += 1
        completed = sum(1 for e in enrollments if e.status == EnrollmentStatus.COMPLETED)
        out.append(
            CohortSummary(
                cohort=c.name,
                program=program.title if program else c.program_id,
                learners=len(enrollments),
                completed=completed,
                completion_rate=round(100 * completed / len(enrollments), 1) if enrollments else 0.0,
                attendance_rate=round(100 * att_yes / att_total, 1) if att_total else 0.0,
                funnel=funnel,
                sessions=sessions,
                weekly_active=[(w.isoformat(), n) for w, n in sorted(weekly.items())],
                evaluation=_evaluation(session, program, ids) if program else [],
            )
        )
    return out
