"""Tables of the learning-records feature, on the core's declarative ``Base`` (so Alembic sees them).

``records_cursors`` holds small named positions: the LRS forwarder's last forwarded event id (the LRS outbox is
the append-only event log read from that cursor) and the install-specific salt of statement ids.
``reinforcement_cards`` holds one FSRS card per learner and quiz question worth revisiting.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.models import PK, Base


class RecordsCursor(Base):
    """A named position in the event log (``lrs``), plus state the position needs (salt, backoff, gap)."""

    __tablename__ = "records_cursors"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    salt: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    #: Set while the forwarder waits at a hole in the id sequence (a transaction that may still commit).
    gap_id: Mapped[int | None] = mapped_column(BigInteger)
    gap_seen_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


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


RECORDS_TABLES: list[Table] = [RecordsCursor.__table__, ReinforcementCard.__table__]  # type: ignore[list-item]
