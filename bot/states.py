"""The closed vocabularies of the core: delivery and step states, step kinds, enrolment statuses, outbox purposes
and learning-event verbs.

They are :class:`~enum.StrEnum` members, so each *is* its stored string: ``DeliveryState.PENDING == "pending"``,
SQLAlchemy binds it as ``'pending'``, and rows written before these enums existed read back unchanged (no data
migration). Using the members instead of free literals lets mypy and a reader find every place that depends on a
state, and turns a typo into an ``AttributeError`` at import instead of a query that silently matches nothing.
"""

from __future__ import annotations

from enum import StrEnum


class DeliveryState(StrEnum):
    """An outbox row's life: ``pending -> sending -> sent``, back to ``pending`` for a retry, or ``failed`` /
    ``skipped`` for good."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class StepState(StrEnum):
    """One learner's state on one step: ``locked -> open -> done``, or ``missed`` (sessions), ``failed`` (a quiz
    out of attempts) or ``skipped``."""

    LOCKED = "locked"
    OPEN = "open"
    DONE = "done"
    MISSED = "missed"
    FAILED = "failed"
    SKIPPED = "skipped"
    #: A live session that had started before the learner enrolled: never invited, never missed, and out of their
    #: attendance rule; the report shows it as "n/a".
    NOT_APPLICABLE = "n/a"


#: States a step never leaves: nothing is delivered, reminded or marked missed for it any more.
FINAL_STEP_STATES = (
    StepState.DONE,
    StepState.MISSED,
    StepState.FAILED,
    StepState.SKIPPED,
    StepState.NOT_APPLICABLE,
)


class StepKind(StrEnum):
    """The kinds of authored step. A step's card is delivered under the purpose of the same name."""

    LESSON = "lesson"
    QUIZ = "quiz"
    SESSION = "session"
    PROMPT = "prompt"
    REFLECTION = "reflection"
    POLL = "poll"


class AgendaAction(StrEnum):
    """What an agenda row asks the tick to do when it fires."""

    DELIVER = "deliver"
    REMIND = "remind"
    SESSION_REMIND = "session_remind"
    CHECKIN = "checkin"
    CLOSE = "close"


class EnrollmentStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    DROPPED = "dropped"


class PurposeName(StrEnum):
    """The core's outbox purposes besides the step kinds (features name their own, see
    :class:`bot.nudges.purposes.Purpose`)."""

    REMIND = "remind"
    SESSION_REMIND = "session_remind"
    CHECKIN = "checkin"
    AUTOPAUSE = "autopause"
    COHORT_PROMPT = "cohort_prompt"
    LEAD_PROMPT = "lead_prompt"
    ANNOUNCE = "announce"
    DIGEST = "digest"
    COHORT_RECAP = "cohort_recap"
    SESSION_CHANGE = "session_change"


class Verb(StrEnum):
    """Learning-event verbs (the xAPI vocabulary lives in :mod:`bot.records.xapi`)."""

    DELIVERED = "delivered"
    OPENED = "opened"
    COMPLETED = "completed"
    ANSWERED = "answered"
    PASSED = "passed"
    FAILED = "failed"
    REGISTERED = "registered"
    UNREGISTERED = "unregistered"
    ATTENDED = "attended"
    MISSED = "missed"
    REPLIED = "replied"
    VOTED = "voted"
    REFLECTED = "reflected"
    CAUGHT_UP = "caught-up"
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"
