"""Teams meeting attendance: participant join/leave events -> minutes in the session's window -> attendance.

When a live session's join URL is a Teams meeting link, :meth:`Meetings.track` keys the session by the meeting's
thread id (``19:meeting_…@thread.v2``, which the link carries and every meeting event's conversation names). With
the app added to the meeting (and the OnlineMeetingParticipant.Read.Chat resource-specific permission), Teams sends
``meetingParticipantJoin`` / ``meetingParticipantLeave`` events and ``meetingEnd``; minutes inside the session's
window are summed per person and, once they reach the session's minimum (its step's ``checkin.min_minutes``, the rule
Discord voice and imported reports apply too; ``teams.meeting_min_minutes`` when the step sets none), reported to the
core once as :class:`~bot.events.PresenceObserved`. Attendance is a set in
the core, so a report repeated after a restart changes nothing.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.adapters.teams import convert
from bot.clock import Clock
from bot.events import Actor, PresenceObserved
from bot.ports import LiveSession

_THREAD = re.compile(r"(19:meeting_[^/@]+@thread\.v2)")


def meeting_thread(join_url: str | None) -> str | None:
    """The meeting's thread id from a Teams join link (``https://teams.microsoft.com/l/meetup-join/19%3ameeting_…``)."""
    if not join_url:
        return None
    found = _THREAD.search(urllib.parse.unquote(join_url))
    return found.group(1) if found else None


@dataclass(frozen=True)
class Window:
    workspace: str
    start: datetime
    end: datetime
    #: Minutes that count as attending this session.
    min_minutes: float


class Meetings:
    """Per-person minutes in tracked meetings (in memory, thread-safe)."""

    def __init__(self, min_minutes: float, clock: Clock) -> None:
        self.min_minutes = min_minutes
        self.clock = clock
        self._windows: dict[str, Window] = {}
        self._joined: dict[tuple[str, str], tuple[datetime, str]] = {}
        self._minutes: dict[tuple[str, str], float] = {}
        self._reported: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def track(self, thread: str, session: LiveSession) -> None:
        """Count minutes in meeting ``thread`` inside ``session``'s window, held to its minimum (else the default)."""
        minimum = self.min_minutes if session.min_minutes is None else session.min_minutes
        with self._lock:
            self._windows[thread] = Window(session.workspace, session.start, session.end, minimum)

    def forget(self, thread: str) -> None:
        """Stop counting meeting ``thread`` (its session was cancelled)."""
        with self._lock:
            self._windows.pop(thread, None)
            for key in [k for k in self._joined if k[0] == thread]:
                del self._joined[key]

    def _inside(self, window: Window, since: datetime, until: datetime) -> float:
        start, end = max(since, window.start), min(until, window.end)
        return max(0.0, (end - start).total_seconds() / 60)

    def events(self, activity: dict[str, Any]) -> list[PresenceObserved]:
        """The attendance facts an event activity settles (usually none)."""
        name = activity.get("name")
        thread = activity["conversation"]["id"].split(";", 1)[0]
        now = self.clock.now()
        with self._lock:
            window = self._windows.get(thread)
            if window is None:
                return []
            if name == convert.PARTICIPANT_JOIN:
                for user in convert.meeting_members(activity):
                    self._joined.setdefault((thread, convert.user_key(user)), (now, str(user.get("name") or "")))
                return []
            if name == convert.PARTICIPANT_LEAVE:
                keys = [(thread, convert.user_key(u)) for u in convert.meeting_members(activity)]
            elif name == convert.MEETING_END:
                keys = [k for k in self._joined if k[0] == thread]
            else:
                return []
            return [fact for key in keys if (fact := self._leave(key, window, now)) is not None]

    def _leave(self, key: tuple[str, str], window: Window, now: datetime) -> PresenceObserved | None:
        joined = self._joined.pop(key, None)
        if joined is None:
            return None
        since, name = joined
        total = self._minutes.get(key, 0.0) + self._inside(window, since, now)
        self._minutes[key] = total
        if total < window.min_minutes or key in self._reported:
            return None
        self._reported.add(key)
        thread, user = key
        return PresenceObserved(Actor(convert.PLATFORM, window.workspace, user, name), thread, round(total, 1))
