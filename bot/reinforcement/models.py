"""Tables of the spaced-reinforcement feature, on the core's declarative ``Base`` (so Alembic sees them).

``reinforcement_cards`` holds one FSRS card per learner and quiz question worth revisiting. The planner's position
in ``quiz_answers`` is a named cursor in ``records_cursors`` (:mod:`bot.records.models`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.records.models import RecordsCursor
from bot.storage.models import PK, Base


class ReinforcementCard(Base):
    """One quiz question that comes back to one learner, scheduled by FSRS.

    ``active`` cards are the ones to revisit: answered wrong at least once, or marked ``reinforce: true`` in the
    program. Other answered questions get an inactive card so the planner never looks at their answers again.
    ``asked_at`` is set while a micro-quiz is out and unanswered; ``reviews`` numbers the reinforcement answers.
    """

    __tablename__ = "reinforcement_cards"
    __table_args__ = (
        UniqueConstraint("progress_id", "question_id", name="uq_reinforcement_cards_progress_question"),
        Index("ix_reinforcement_cards_due", "active", "due_at"),
        Index("ix_reinforcement_cards_asked", "asked_at"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    progress_id: Mapped[int] = mapped_column(ForeignKey("step_progress.id", ondelete="CASCADE"))
    program_id: Mapped[str] = mapped_column(String(64))
    step_id: Mapped[str] = mapped_column(String(64))
    question_id: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    reason: Mapped[str] = mapped_column(String(10))  # wrong | marked | correct (inactive)
    state: Mapped[int] = mapped_column(Integer, default=1)  # fsrs.State
    stability: Mapped[float | None] = mapped_column(Float)
    difficulty: Mapped[float | None] = mapped_column(Float)
    due_at: Mapped[datetime]
    last_review_at: Mapped[datetime | None]
    reviews: Mapped[int] = mapped_column(Integer, default=0)
    lapses: Mapped[int] = mapped_column(Integer, default=0)
    asked_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


#: The cursor table comes along: the planner keeps its position there.
REINFORCEMENT_TABLES: list[Table] = [RecordsCursor.__table__, ReinforcementCard.__table__]  # type: ignore[list-item]
