"""Tables of the learning-records feature, on the core's declarative ``Base`` (so Alembic sees them).

``records_cursors`` holds small named positions: the LRS forwarder's last forwarded event id (the LRS outbox is
the append-only event log read from that cursor) and the install-specific salt of statement ids. Spaced
reinforcement keeps its own cursor here too; its cards live in :mod:`bot.reinforcement.models`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.models import Base


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


RECORDS_TABLES: list[Table] = [RecordsCursor.__table__]  # type: ignore[list-item]
