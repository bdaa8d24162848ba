"""Voice and stage attendance: minutes each member spends in a session's channel inside the session's window.

Pure bookkeeping, fed with voice state changes and the clock; the adapter turns what :meth:`PresenceTracker.due`
returns into :class:`~bot.events.PresenceObserved`. Presence outside the window does not count (joining early is
fine, but only the minutes after the start are counted), and each member is reported once per session, when their
minutes first reach the minimum: the session's own (its step's ``checkin.min_minutes``, carried by
:class:`~bot.ports.LiveSession`), else the tracker's default (``discord.voice_min_minutes``). Reporting again after
a restart is harmless: attendance is a set in the core.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from bot.ports import LiveSession


@dataclass(frozen=True)
class TrackedSession:
    ref: str
    workspace: str
    channel_id: str
    start: datetime
    end: datetime
    #: The session's own minimum minutes; ``None``: the tracker's default.
    min_minutes: float | None = None

    @classmethod
    def of(cls, ref: str, workspace: str, channel_id: str, session: LiveSession) -> TrackedSession:
        """The core's session ``ref`` (its Scheduled Event) as tracked in ``channel_id``, with its own minimum."""
        return cls(ref, workspace, channel_id, session.start, session.end, session.min_minutes)


@dataclass(frozen=True)
class Presence:
    ref: str
    workspace: str
    user_id: str
    name: str
    minutes: float


@dataclass
class _Stint:
    channel_id: str
    since: datetime
    name: str


@dataclass
class PresenceTracker:
    min_minutes: float
    sessions: dict[str, TrackedSession] = field(default_factory=dict)
    _open: dict[tuple[str, str], _Stint] = field(default_factory=dict)
    _closed: dict[tuple[str, str], float] = field(default_factory=dict)
    _names: dict[tuple[str, str], str] = field(default_factory=dict)
    _reported: set[tuple[str, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def track(self, session: TrackedSession) -> None:
        with self._lock:
            self.sessions[session.ref] = session

    def forget(self, ref: str) -> None:
        with self._lock:
            self.sessions.pop(ref, None)
            for key in [k for k in self._closed if k[0] == ref]:
                del self._closed[key]
            self._reported = {k for k in self._reported if k[0] != ref}

    def is_in(self, workspace: str, user_id: str) -> bool:
        with self._lock:
            return (workspace, user_id) in self._open

    def moved(
        self, workspace: str, user_id: str, channel_id: str | None, at: datetime, name: str = ""
    ) -> None:
        """``user_id`` is now in ``channel_id`` (``None``: left voice). Closes the previous stint, if any."""
        with self._lock:
            key = (workspace, user_id)
            stint = self._open.pop(key, None)
            if stint is not None:
                self._close(workspace, user_id, stint, at)
            if channel_id is not None:
                self._open[key] = _Stint(channel_id, at, name)

    def _close(self, workspace: str, user_id: str, stint: _Stint, at: datetime) -> None:
        for session in self.sessions.values():
            if session.workspace == workspace and session.channel_id == stint.channel_id:
                seconds = _overlap(stint.since, at, session.start, session.end)
                if seconds > 0:
                    self._closed[(session.ref, user_id)] = (
                        self._closed.get((session.ref, user_id), 0.0) + seconds
                    )
                    self._names[(session.ref, user_id)] = stint.name

    def minutes(self, ref: str, user_id: str, now: datetime) -> float:
        with self._lock:
            return self._minutes(self.sessions[ref], user_id, now)

    def _minutes(self, session: TrackedSession, user_id: str, now: datetime) -> float:
        seconds = self._closed.get((session.ref, user_id), 0.0)
        stint = self._open.get((session.workspace, user_id))
        if stint is not None and stint.channel_id == session.channel_id:
            seconds += _overlap(stint.since, now, session.start, session.end)
        return seconds / 60.0

    def due(self, now: datetime) -> list[Presence]:
        """Members whose minutes in a session reached the minimum since the last call, each reported once."""
        out: list[Presence] = []
        with self._lock:
            for session in self.sessions.values():
                if now < session.start:
                    continue
                minimum = self.min_minutes if session.min_minutes is None else session.min_minutes
                users = {u for (ref, u) in self._closed if ref == session.ref}
                users |= {
                    u
                    for (ws, u), stint in self._open.items()
                    if ws == session.workspace and stint.channel_id == session.channel_id
                }
                for user_id in sorted(users):
                    if (session.ref, user_id) in self._reported:
                        continue
                    minutes = self._minutes(session, user_id, now)
                    if minutes >= minimum:
                        self._reported.add((session.ref, user_id))
                        stint = self._open.get((session.workspace, user_id))
                        name = stint.name if stint else self._names.get((session.ref, user_id), "")
                        out.append(Presence(session.ref, session.workspace, user_id, name, round(minutes, 2)))
        return out

    def prune(self, now: datetime, keep_after_end_seconds: float = 86400) -> None:
        """Forget sessions that ended more than a day ago."""
        with self._lock:
            stale = [
                s.ref
                for s in self.sessions.values()
                if (now - s.end).total_seconds() > keep_after_end_seconds
            ]
        for ref in stale:
            self.forget(ref)


def _overlap(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> float:
    start = max(a_start, b_start)
    end = min(a_end, b_end)
    return max(0.0, (end - start).total_seconds())
