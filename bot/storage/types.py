"""Column types.

Instants are stored as integer **milliseconds since the Unix epoch (UTC)**. That choice is deliberate: the tick
plans work set-wise in SQL (``fire_at <= :now``, ``fire_at + offset``), and integer arithmetic is identical on
SQLite and PostgreSQL, whereas interval arithmetic on timestamps is not. Python code only ever sees aware UTC
datetimes; naive datetimes are refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy.types import TypeDecorator


def to_ms(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} cannot be stored; use an aware UTC datetime")
    return int(value.timestamp() * 1000)


@lru_cache(maxsize=8192)
def from_ms(value: int) -> datetime:
    # Rows loaded together share their instants (a burst's unlock, due and creation times): each is made once.
    # A datetime is immutable, so sharing one is safe.
    return datetime.fromtimestamp(value / 1000, tz=UTC)


class Instant(TypeDecorator[datetime]):
    """An aware UTC datetime stored as epoch milliseconds."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, int):
            return value
        return to_ms(value)

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        return None if value is None else from_ms(int(value))
