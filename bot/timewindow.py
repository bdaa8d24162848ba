"""Each learner's delivery window: working days and hours, quiet hours and pauses, in their own time zone.

All arithmetic happens on local wall-clock dates and is converted back through ``zoneinfo``, so a window opening at
09:00 stays at 09:00 local across a DST change. Wall times that do not exist (the spring-forward gap) are moved
forward past the gap; ambiguous ones (the autumn overlap) take the first occurrence (``fold=0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_instant(day: date, at: time, tz: str) -> datetime:
    """The UTC instant of wall time ``at`` on ``day`` in ``tz``; gap times move forward past the gap."""
    tzinfo = zone(tz)
    naive = datetime.combine(day, at)
    candidate = naive.replace(tzinfo=tzinfo, fold=0)
    utc = candidate.astimezone(UTC)
    # A non-existent wall time does not round-trip; zoneinfo then maps it using the pre-gap offset, which lands
    # *after* the gap in UTC. Re-derive the local time from that instant so the result is a real wall time.
    if utc.astimezone(tzinfo).replace(tzinfo=None) != naive:
        return utc.astimezone(tzinfo).astimezone(UTC)
    return utc


@dataclass(frozen=True)
class Window:
    """When a person may receive non-urgent messages."""

    tz: str
    start: time
    end: time
    weekdays: frozenset[int]
    quiet_start: time | None = None
    quiet_end: time | None = None
    paused_until: datetime | None = None

    def _quiet(self, t: time) -> bool:
        if self.quiet_start is None or self.quiet_end is None:
            return False
        if self.quiet_start <= self.quiet_end:
            return self.quiet_start <= t < self.quiet_end
        return t >= self.quiet_start or t < self.quiet_end

    def contains(self, instant: datetime) -> bool:
        if self.paused_until is not None and instant < self.paused_until:
            return False
        local = instant.astimezone(zone(self.tz))
        t = local.time().replace(tzinfo=None)
        return local.weekday() in self.weekdays and self.start <= t < self.end and not self._quiet(t)

    def next_open(self, instant: datetime) -> datetime:
        """The first instant at or after ``instant`` inside the window."""
        if self.paused_until is not None and instant < self.paused_until:
            instant = self.paused_until
        if self.contains(instant):
            return instant
        tzinfo = zone(self.tz)
        local = instant.astimezone(tzinfo)
        day = local.date()
        for _ in range(15):
            opening = local_instant(day, self.start, self.tz)
            closing = local_instant(day, self.end, self.tz)
            if day.weekday() in self.weekdays:
                candidate = max(opening, instant)
                # Step past quiet hours that overlap the working day (e.g. quiet until 10:00).
                probe = candidate
                while probe < closing and not self.contains(probe):
                    probe += timedelta(minutes=15)
                if probe < closing:
                    return probe
            day += timedelta(days=1)
        # No open slot in two weeks (e.g. no working days): deliver at the requested time rather than never.
        return instant

    def last_open_before(self, instant: datetime) -> datetime:
        """Where a nudge due at ``instant`` outside the window goes instead: the start of the last working hour
        before it (16:30 for a day ending at 17:30), stepping back past quiet hours. ``instant`` itself when it is
        inside the window; unchanged when no working day falls in the two weeks before it."""
        if self.contains(instant):
            return instant
        day = instant.astimezone(zone(self.tz)).date()
        for _ in range(15):
            opening = local_instant(day, self.start, self.tz)
            if day.weekday() in self.weekdays and opening < instant:
                probe = max(opening, min(local_instant(day, self.end, self.tz), instant) - timedelta(hours=1))
                while probe >= opening and not self.contains(probe):
                    probe -= timedelta(minutes=15)
                if probe >= opening:
                    return probe
            day -= timedelta(days=1)
        return instant
