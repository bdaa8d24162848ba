"""The progression engine's façade: one object the dispatcher, commands, CLI and features call.

Every operation works inside a caller-provided SQLAlchemy ``Session`` (one unit of work per inbound event or CLI
command) and takes ``now`` from the injected clock. The work itself lives in one module per concern, and each
method here delegates to the function of the same name there (its docstring is the contract):

* :mod:`bot.journeys.people`: people, roles, reporting lines, time zones and sending windows;
* :mod:`bot.journeys.timeline`: cohorts, releasing dependants, snooze, pause;
* :mod:`bot.journeys.enrolment`: set-wise enrolment that materialises each learner's timeline;
* :mod:`bot.journeys.progress`: completion, status figures, program completion, roster, replies, reflections;
* :mod:`bot.journeys.quizzes`: grading, answers, retries;
* :mod:`bot.journeys.sessions`: live sessions, RSVP, check-in, attendance, missed.

Poll steps live with the rest of the poll logic in :mod:`bot.live.polls`. Code that needs only one concern may call
its module directly with an ``Engine`` (it *is* a :class:`~bot.journeys.context.Context`); the façade exists so the
many call sites need not know where each operation lives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.journeys import enrolment, people, progress, quizzes, reschedule, sessions, timeline
from bot.journeys.context import FINAL_STATES, Context
from bot.journeys.model import SessionStep
from bot.journeys.quizzes import QuizOutcome
from bot.nudges.purposes import Purpose
from bot.storage.models import (
    Attendance,
    Cohort,
    CohortPost,
    Enrollment,
    LiveSessionRow,
    Person,
    StepProgress,
)
from bot.timewindow import Window

__all__ = ["FINAL_STATES", "Engine", "QuizOutcome"]


class Engine(Context):
    """Domain operations. Stateless apart from its collaborators, so one instance serves every thread."""

    # ------------------------------------------------------------------ people and roles
    def person(
        self,
        session: Session,
        platform: str,
        workspace: str,
        user_id: str,
        *,
        name: str | None = None,
        tz: str | None = None,
        email: str | None = None,
    ) -> Person:
        return people.person(self, session, platform, workspace, user_id, name=name, tz=tz, email=email)

    def is_admin(self, person: Person, roles: Iterable[str] = ()) -> bool:
        return people.is_admin(self, person, roles)

    def is_lead(self, session: Session, person: Person, cohort: Cohort, roles: Iterable[str] = ()) -> bool:
        return people.is_lead(self, session, person, cohort, roles)

    def require_lead(
        self, session: Session, person: Person, cohort: Cohort, roles: Iterable[str] = ()
    ) -> None:
        people.require_lead(self, session, person, cohort, roles)

    def require_admin(self, person: Person, roles: Iterable[str] = ()) -> None:
        people.require_admin(self, person, roles)

    def reports_of(self, session: Session, manager: Person, *, indirect: bool | None = None) -> list[Person]:
        return people.reports_of(self, session, manager, indirect=indirect)

    def person_tz(self, person: Person, cohort: Cohort | None = None) -> str:
        return people.person_tz(self, person, cohort)

    def window(self, person: Person, cohort: Cohort | None = None, *, respect_pause: bool = True) -> Window:
        return people.window(self, person, cohort, respect_pause=respect_pause)

    def cohort_by_name(self, session: Session, workspace: str, name: str) -> Cohort:
        return people.cohort_by_name(session, workspace, name)

    # ------------------------------------------------------------------ timeline
    def create_cohort(
        self,
        session: Session,
        *,
        name: str,
        program_id: str,
        platform: str,
        workspace: str,
        start: date,
        tz: str | None = None,
        channel: str | None = None,
        leads: Iterable[Person] = (),
        join_urls: Mapping[str, str] | None = None,
    ) -> Cohort:
        """A cohort and its live sessions; ``join_urls`` (session step id -> URL) replaces the program's links."""
        return timeline.create_cohort(
            self,
            session,
            name=name,
            program_id=program_id,
            platform=platform,
            workspace=workspace,
            start=start,
            tz=tz,
            channel=channel,
            leads=leads,
            join_urls=join_urls,
        )

    @staticmethod
    def session_start(step: SessionStep, cohort: Cohort) -> datetime:
        return timeline.session_start(step, cohort)

    def enroll(self, session: Session, cohort: Cohort, person: Person) -> Enrollment:
        """Enrol ``person`` and materialise their timeline. Enrolling twice returns the existing enrolment.

        This is :meth:`enroll_many` of one, so a single enrolment and a bulk one write the same rows and events.
        """
        enrollment = session.get(Enrollment, self.enroll_many(session, cohort, [person])[person.id])
        assert enrollment is not None
        return enrollment

    def enroll_many(self, session: Session, cohort: Cohort, people: Sequence[enrolment.Enrollee]) -> dict[int, int]:
        """Enrol many people with a few bulk statements (see :mod:`bot.journeys.enrolment`).

        Returns ``{person id: enrolment id}`` for everyone given; people already enrolled are left untouched.
        """
        return enrolment.enroll_many(self, session, cohort, people)

    def snooze(self, session: Session, sp: StepProgress, until: datetime) -> datetime:
        return timeline.snooze(self, session, sp, until)

    def snooze_all(self, session: Session, person: Person, delta: timedelta) -> datetime:
        return timeline.snooze_all(self, session, person, delta)

    def pause(self, session: Session, person: Person, until: datetime | None) -> None:
        timeline.pause(self, session, person, until)

    def queue_channel_post(
        self,
        session: Session,
        cohort: Cohort,
        purpose: Purpose,
        payload: dict[str, Any],
        *,
        key: Sequence[object] | None = None,
    ) -> int | None:
        return timeline.queue_channel_post(self, session, cohort, purpose, payload, key=key)

    # ------------------------------------------------------------------ progress
    def progress(self, session: Session, progress_id: int) -> StepProgress:
        return progress.get(session, progress_id)

    def owned_progress(self, session: Session, progress_id: int, person: Person) -> StepProgress:
        return progress.owned(session, progress_id, person)

    def seen(self, session: Session, key: str | None) -> bool:
        return progress.seen(self, session, key)

    def release_not_applicable(self, session: Session, progress_ids: Sequence[int], now: datetime) -> int:
        return timeline.release_not_applicable(self, session, progress_ids, now)

    def complete(self, session: Session, sp: StepProgress, *, source: str = "learner") -> bool:
        return progress.complete(self, session, sp, source=source)

    def status_counts(self, session: Session, enrollment: Enrollment) -> dict[str, Any]:
        return progress.status_counts(self, session, enrollment)

    def check_program_completion(self, session: Session, enrollment: Enrollment) -> bool:
        return progress.check_program_completion(self, session, enrollment)

    def open_step(self, session: Session, sp: StepProgress) -> None:
        progress.open_step(self, sp)

    def thread_reply(
        self, session: Session, post: CohortPost, person: Person, message_id: str, text: str
    ) -> StepProgress | None:
        return progress.thread_reply(self, session, post, person, message_id, text)

    def reflect(self, session: Session, sp: StepProgress, text: str) -> None:
        progress.reflect(self, session, sp, text)

    # ------------------------------------------------------------------ quizzes
    def quiz_state(self, sp: StepProgress) -> dict[str, Any]:
        return quizzes.quiz_state(sp)

    def answer(
        self, session: Session, sp: StepProgress, attempt: int, question_index: int, choice: list[int]
    ) -> QuizOutcome:
        return quizzes.answer(self, session, sp, attempt, question_index, choice)

    def toggle_choice(self, session: Session, sp: StepProgress, attempt: int, qi: int, option: int) -> None:
        quizzes.toggle_choice(session, sp, attempt, qi, option)

    def retry_quiz(self, session: Session, sp: StepProgress) -> None:
        quizzes.retry_quiz(self, session, sp)

    # ------------------------------------------------------------------ live sessions
    def live_session(self, session: Session, cohort: Cohort, step_id: str) -> LiveSessionRow:
        return sessions.live_session(session, cohort, step_id)

    def attendance(self, session: Session, live: LiveSessionRow, enrollment: Enrollment) -> Attendance:
        return sessions.attendance(session, live, enrollment)

    def session_for_progress(self, session: Session, sp: StepProgress) -> tuple[Enrollment, LiveSessionRow]:
        return sessions.session_for_progress(session, sp)

    def rsvp(self, session: Session, sp: StepProgress, answer: str) -> str:
        return sessions.rsvp(self, session, sp, answer)

    def checkin_open(self, live: LiveSessionRow, now: datetime) -> bool:
        return sessions.checkin_open(live, now)

    def check_in(
        self,
        session: Session,
        sp: StepProgress,
        *,
        source: str = "checkin",
        minutes: float | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> bool:
        return sessions.check_in(self, session, sp, source=source, minutes=minutes, extensions=extensions)

    def set_checkin(self, session: Session, live: LiveSessionRow, state: str) -> None:
        sessions.set_checkin(live, state)

    def mark_missed(self, session: Session, progress_ids: list[int]) -> int:
        return sessions.mark_missed(self, session, progress_ids)

    def move_session(self, session: Session, live: LiveSessionRow, start: datetime) -> reschedule.Change:
        return reschedule.move(self, session, live, start)

    def cancel_session(self, session: Session, live: LiveSessionRow) -> reschedule.Change:
        return reschedule.cancel(self, session, live)
