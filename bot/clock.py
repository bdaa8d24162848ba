"""Clocks. Time is aware and UTC inside Blendwise; zones are applied at the edges with zoneinfo.

The clock is injected everywhere (engine, tick, sender, scheduler) so that the demo and the tests move time by
advancing a :class:`VirtualClock` instead of sleeping.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class VirtualClock:
    """A clock that only moves when told to. Thread-safe, because adapters may read it from their own threads."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("VirtualClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("time does not go backwards")
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            if when.astimezone(UTC) < self._now:
                raise ValueError("time does not go backwards")
            self._now = when.astimezone(UTC)


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; naive values are refused, not guessed."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: Blendwise only handles aware datetimes")
    return value.astimezone(UTC)
