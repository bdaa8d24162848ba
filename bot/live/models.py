"""Tables of the live-engagement feature: catch-up lessons and the search index.

They live on the core's declarative ``Base`` so that Alembic sees them once ``bot.live.models`` is imported by the
migration environment. Until a migration carries them, :func:`bot.live.install` creates them if they are missing.

The full-text index differs per database and is created as DDL next to these tables:

* SQLite: an FTS5 virtual table ``search_fts`` with external content (``search_docs``) kept in step by triggers
  (see :mod:`bot.live.search`).
* PostgreSQL: a GIN expression index over the weighted ``tsvector`` of title and body, defined below, so ranking
  queries use the same expression and hit the index.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, func, literal_column
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from bot.storage.models import PK, Base


class LiveCatchup(Base):
    """One learner's catch-up lesson for one missed live session: where they are in its recap quiz, and when
    they completed it. The unique key makes release idempotent (one catch-up per learner and session)."""

    __tablename__ = "live_catchups"
    __table_args__ = (
        UniqueConstraint("session_id", "enrollment_id", name="uq_live_catchups_session_enrollment"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    progress_id: Mapped[int | None] = mapped_column(ForeignKey("step_progress.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(8), default="sent")  # sent | done
    question: Mapped[int] = mapped_column(Integer, default=0)
    correct: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


class SearchDoc(Base):
    """A searchable text: a lesson body (per program), or a released session summary or transcript (per cohort).

    ``key`` is ``lesson:<program>:<step>``, ``summary:<session id>`` or ``transcript:<session id>``; ``digest``
    lets re-indexing skip unchanged documents.
    """

    __tablename__ = "search_docs"

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)
    kind: Mapped[str] = mapped_column(String(12))  # lesson | summary | transcript
    program_id: Mapped[str] = mapped_column(String(64), index=True)
    step_id: Mapped[str] = mapped_column(String(64))
    cohort_id: Mapped[int | None] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]
    meta: Mapped[dict[str, Any] | None]


def pg_document(title: Any, body: Any) -> ColumnElement[Any]:
    """The weighted PostgreSQL document: title words (A) rank above body words (B). Used by the index and the
    query alike; PostgreSQL only uses an expression index for the identical expression, so it holds literals only
    (no bound parameters)."""
    english: Any = literal_column("'english'::regconfig")
    return func.setweight(func.to_tsvector(english, title), literal_column("'A'")).op("||")(
        func.setweight(func.to_tsvector(english, body), literal_column("'B'"))
    )


Index(
    "ix_search_docs_fts",
    pg_document(SearchDoc.__table__.c.title, SearchDoc.__table__.c.body),
    postgresql_using="gin",
    _table=SearchDoc.__table__,  # type: ignore[arg-type]
).ddl_if(dialect="postgresql")

LIVE_TABLES = (LiveCatchup.__table__, SearchDoc.__table__)
