"""The content model: what an admin writes in ``content/<program>/program.yaml``.

Every model forbids unknown keys, so a typo is reported at ``path:line`` instead of being ignored. The format is
documented in ``docs/content.md``.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from bot.durations import parse_duration
from bot.states import StepKind

STEP_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"
#: Steps a program may hold: a year of daily micro-lessons fits; a generated file with thousands does not.
MAX_STEPS = 500
#: The years an absolute session start may fall in.
FIRST_YEAR, LAST_YEAR = 2000, 2099


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_duration(value)  # type: ignore[arg-type]


def _clock_time(value: object) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        hour, minute = (int(p) for p in value.strip().split(":"))
        if hour < 24 and minute < 60:
            return time(hour, minute)
    raise ValueError(f"'{value}' is not a time of day; use HH:MM, for example 09:30")


Duration = Annotated[timedelta, BeforeValidator(_duration)]
ClockTime = Annotated[time, BeforeValidator(_clock_time)]


def check_tz(name: str) -> str:
    try:
        ZoneInfo(name)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError for odd strings
        raise ValueError(f"unknown time zone '{name}' (use an IANA name such as Europe/Berlin)") from exc
    return name


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Unlock(Strict):
    """When a step becomes available. ``day`` counts from the cohort start (or the learner's enrollment when
    ``from: enrollment``); ``at`` is a local time of day in the learner's zone; ``after`` lists prerequisites."""

    day: int = Field(default=0, ge=0, le=3650)
    at: ClockTime | None = None
    from_: Literal["cohort", "enrollment"] = Field(default="cohort", alias="from")
    after: list[str] = Field(default_factory=list)


class Reminders(Strict):
    """Nudges for an unlocked but unfinished step: one after each delay, counted from the unlock."""

    after: list[Duration] = Field(default_factory=list)
    enabled: bool = True


class Option(Strict):
    text: str = Field(min_length=1, max_length=300)
    correct: bool = False
    feedback: str = ""


class Question(Strict):
    id: str = Field(pattern=STEP_ID)
    text: str = Field(min_length=1)
    multiple: bool = False
    options: list[Option] = Field(min_length=2, max_length=10)
    explanation: str = ""
    reinforce: bool = False

    @model_validator(mode="after")
    def _has_correct(self) -> Question:
        correct = sum(1 for o in self.options if o.correct)
        if correct == 0:
            raise ValueError(f"question '{self.id}' has no correct option")
        if not self.multiple and correct > 1:
            raise ValueError(f"question '{self.id}' is single choice but marks {correct} options correct")
        if self.multiple and self.reinforce:
            # A recall card is one tap on one answer; marking a choose-all question would silently never bring it back.
            raise ValueError(
                f"question '{self.id}' is choose-all-that-apply; reinforce: true brings back single-choice questions only"
            )
        return self


class Retry(Strict):
    max_attempts: int = Field(default=2, ge=1, le=10)


class CheckIn(Strict):
    opens_before: Duration = timedelta(minutes=10)
    closes_after: Duration = timedelta(minutes=30)
    #: Minutes in the meeting that count as attending, for attendance imported from a meeting tool's report.
    min_minutes: float | None = Field(default=None, ge=0, le=1440)


class SessionStart(Strict):
    """A session start relative to the cohort: ``day`` offset, local ``at`` time in ``tz`` (the cohort's by default)."""

    day: int = Field(ge=0, le=3650)
    at: ClockTime
    tz: str | None = None

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else check_tz(value)


Objective = Annotated[str, Field(min_length=1, max_length=300)]


class StepBase(Strict):
    id: str = Field(pattern=STEP_ID)
    title: str = Field(min_length=1, max_length=150)
    #: What the learner will be able to do after this step; shown in a lesson's intro and the facilitator guide.
    objectives: list[Objective] = Field(default_factory=list, max_length=8)
    unlock: Unlock = Field(default_factory=Unlock)
    due: Duration | None = None
    required: bool = True
    reminders: Reminders | None = None


class LessonStep(StepBase):
    kind: Literal["lesson"]
    body: str = ""
    body_file: str | None = None
    estimated_minutes: int | None = Field(default=None, ge=1, le=120)

    @model_validator(mode="after")
    def _has_body(self) -> LessonStep:
        if not self.body and not self.body_file:
            raise ValueError("a lesson needs 'body' or 'body_file'")
        if self.body and self.body_file:
            raise ValueError("a lesson takes 'body' or 'body_file', not both")
        return self


class QuizStep(StepBase):
    kind: Literal["quiz"]
    intro: str = ""
    questions: list[Question] = Field(min_length=1, max_length=20)
    pass_mark: float = Field(default=0.7, ge=0, le=1, allow_inf_nan=False)
    complete_on: Literal["pass", "attempt"] = "pass"
    retry: Retry = Field(default_factory=Retry)


class RubricCriterion(Strict):
    """One thing an observer looks for, described at each level of the rubric (same order as ``levels``)."""

    name: str = Field(min_length=1, max_length=100)
    descriptors: list[str] = Field(min_length=2, max_length=5)


class Rubric(Strict):
    """A practice rubric (criteria x levels) for a session that practises a skill; printed in the facilitator
    guide so observers score the same way."""

    levels: list[str] = Field(min_length=2, max_length=5)
    criteria: list[RubricCriterion] = Field(min_length=1, max_length=12)

    @model_validator(mode="after")
    def _square(self) -> Rubric:
        for criterion in self.criteria:
            if len(criterion.descriptors) != len(self.levels):
                raise ValueError(
                    f"criterion '{criterion.name}' describes {len(criterion.descriptors)} level(s) but the rubric "
                    f"has {len(self.levels)} ({', '.join(self.levels)}); give one descriptor per level"
                )
        return self


class SessionStep(StepBase):
    kind: Literal["session"]
    #: Markdown facilitator guide (agenda with timings, talk notes, exercises, observer sheet), relative to
    #: program.yaml; ``content check`` reads it and ``content guide`` prints it.
    facilitator_file: str | None = None
    rubric: Rubric | None = None
    description: str = ""
    start: SessionStart | datetime
    duration: Duration = timedelta(hours=1)
    join_url: str | None = None
    location: str | None = None
    capacity: int | None = Field(default=None, ge=1, le=100_000)
    prework: list[str] = Field(default_factory=list)
    checkin: CheckIn = Field(default_factory=CheckIn)
    agenda: list[str] = Field(default_factory=list)
    #: Reminders before the start; ``None`` means the app-wide ``nudges.session_reminders``, ``[]`` means none.
    session_reminders: list[Duration] | None = None

    @field_validator("start", mode="before")
    @classmethod
    def _not_a_number(cls, value: object) -> object:
        # pydantic would read a bare number as a Unix timestamp; nobody means 1970 here.
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError("start must be {day: N, at: HH:MM} or an ISO date-time with offset, not a number")
        return value

    @field_validator("start")
    @classmethod
    def _aware(cls, value: SessionStart | datetime) -> SessionStart | datetime:
        if isinstance(value, datetime) and value.tzinfo is None:
            raise ValueError("an absolute session start needs a UTC offset, e.g. 2026-03-02T15:00:00+00:00")
        if isinstance(value, datetime) and not FIRST_YEAR <= value.year <= LAST_YEAR:
            # Year 9999 overflows the moment reminders are planned; 1970 is a session that ended before anyone
            # enrolled. Neither is what an author meant.
            raise ValueError(
                f"an absolute session start must fall in the years {FIRST_YEAR}-{LAST_YEAR}, not {value.year}"
            )
        return value

    @field_validator("join_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://\S+$", value):
            raise ValueError(f"join_url '{value}' is not an http(s) URL")
        return value


class PromptStep(StepBase):
    kind: Literal["prompt"]
    text: str = Field(min_length=1)


class ReflectionStep(StepBase):
    kind: Literal["reflection"]
    question: str = Field(min_length=1)
    min_words: int = Field(default=0, ge=0, le=500)


class PollStep(StepBase):
    kind: Literal["poll"]
    question: str = Field(min_length=1)
    options: list[str] = Field(min_length=2, max_length=10)
    anonymous: bool = False
    multi: bool = False
    #: The Kirkpatrick level the question evaluates (1 reaction, 2 learning, 3 behaviour); set on the polls an
    #: ``evaluation`` becomes, and recorded with every vote.
    level: int | None = Field(default=None, ge=1, le=3)


Step = Annotated[
    LessonStep | QuizStep | SessionStep | PromptStep | ReflectionStep | PollStep,
    Field(discriminator="kind"),
]
#: The kinds a step may declare, in the order error messages list them (one vocabulary: :class:`StepKind`).
STEP_KINDS = tuple(kind.value for kind in StepKind)


class Completion(Strict):
    """Program completion, across both formats."""

    required_steps: Literal["all", "none"] = "all"
    quizzes_passed: bool = True
    min_sessions_attended: int | None = Field(default=None, ge=0, le=MAX_STEPS)
    allow_catch_up: bool = True


class EvaluationQuestion(Strict):
    """One question of the end-of-program evaluation, at a Kirkpatrick level."""

    id: str = Field(pattern=STEP_ID)
    level: int = Field(ge=1, le=3)
    text: str = Field(min_length=1, max_length=500)
    options: list[str] = Field(min_length=2, max_length=10)


class Evaluation(Strict):
    """The end-of-program survey: reaction (level 1), learning (2) and intended behaviour change (3).

    Each question becomes a poll step ``evaluation-<id>`` that waits for the one before it, so the survey arrives
    one question at a time after the last step; every vote is a ``voted`` fact carrying the level.
    """

    title: str = Field(default="Program evaluation", min_length=1, max_length=120)
    unlock: Unlock = Field(default_factory=Unlock)
    due: Duration | None = None
    required: bool = True
    questions: list[EvaluationQuestion] = Field(min_length=1, max_length=12)


class Reference(Strict):
    """A source the program's claims rest on: a full citation, optionally with a link."""

    citation: str = Field(min_length=1, max_length=500)
    url: str | None = Field(default=None, pattern=r"^https?://\S+$")


class Defaults(Strict):
    reminders: Reminders = Field(default_factory=lambda: Reminders(after=[timedelta(days=1), timedelta(days=3)]))
    unlock_at: ClockTime = time(9, 30)


class Program(Strict):
    id: str = Field(pattern=STEP_ID)
    title: str = Field(min_length=1, max_length=150)
    summary: str = ""
    pattern: str = ""
    audience: str = ""
    tz: str = "UTC"
    length_days: int | None = Field(default=None, ge=1, le=3650)
    #: What a learner will be able to do after the program; shown in the first lesson and the facilitator guide.
    objectives: list[Objective] = Field(default_factory=list, max_length=12)
    references: list[Reference] = Field(default_factory=list, max_length=40)
    evaluation: Evaluation | None = None
    completion: Completion = Field(default_factory=Completion)
    defaults: Defaults = Field(default_factory=Defaults)
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str) -> str:
        return check_tz(value)

    def step(self, step_id: str) -> LessonStep | QuizStep | SessionStep | PromptStep | ReflectionStep | PollStep:
        for s in self.steps:
            if s.id == step_id:
                return s
        from bot.errors import NotFound

        raise NotFound(f"step in program {self.id}", step_id)

    @property
    def sessions(self) -> list[SessionStep]:
        return [s for s in self.steps if isinstance(s, SessionStep)]

    def attendance_minutes(self, step_id: str) -> float | None:
        """The session step's ``checkin.min_minutes``: the one minimum-minutes rule of every automatic attendance
        source (a meeting tool's report, voice channel presence, meeting participant events). ``None`` when the step
        sets none (or is not a session), so each source falls back to its own default."""
        step = next((s for s in self.sessions if s.id == step_id), None)
        return None if step is None else step.checkin.min_minutes

    def with_evaluation(self) -> Program:
        """The program with its ``evaluation`` appended as poll steps (what the engine delivers)."""
        if self.evaluation is None:
            return self
        return self.model_copy(update={"steps": [*self.steps, *evaluation_steps(self.evaluation)]})


EVALUATION_PREFIX = "evaluation-"


def evaluation_steps(evaluation: Evaluation) -> list[PollStep]:
    """One poll a question, each waiting for the previous one, so the survey reads as one short conversation."""
    steps: list[PollStep] = []
    total = len(evaluation.questions)
    for n, q in enumerate(evaluation.questions, start=1):
        after = [steps[-1].id] if steps else list(evaluation.unlock.after)
        steps.append(
            PollStep(
                kind="poll",
                id=f"{EVALUATION_PREFIX}{q.id}",
                title=f"{evaluation.title} ({n}/{total})",
                unlock=evaluation.unlock.model_copy(update={"after": after}),
                due=evaluation.due,
                required=evaluation.required,
                question=q.text,
                options=list(q.options),
                level=q.level,
            )
        )
    return steps


AnyStep = LessonStep | QuizStep | SessionStep | PromptStep | ReflectionStep | PollStep
