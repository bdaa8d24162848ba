"""A workspace send budget shared by every worker through the database.

Each workspace has one ``send_budget`` row holding the next free send slot (epoch milliseconds). A worker that wants
to post takes a slot with one atomic ``UPDATE ... RETURNING``: the row moves on by ``1 / rate`` seconds and the
worker gets the slot's time. Slots are therefore spaced at the workspace rate across all workers together, whether
one process runs or ten (the virtual-scheduling form of a token bucket, GCRA). A slot is never taken more than
``horizon`` seconds ahead, so a busy worker cannot hoard the budget, and an idle workspace does not bank credit: the
row restarts from "now" after a pause, allowing at most one slot of burst.

Wall-clock time is used on purpose (not the injected clock): the budget limits real requests to a real platform,
and every worker on one database shares the same wall clock.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.storage.db import rowcount
from bot.storage.models import SendBudget

_table: Table = SendBudget.__table__  # type: ignore[assignment]


class SharedBudget:
    """Slots at ``rate`` posts per second per key, shared through the ``send_budget`` table.

    Args:
        factory: sessions on the shared database.
        horizon: seconds ahead a slot may be taken; further requests are told to wait. Short, so that a worker
            never holds slots it cannot use at once (held slots that mature together would be a burst).
        wall: the time source in seconds (injected by tests).
    """

    def __init__(
        self, factory: sessionmaker[Session], *, horizon: float = 0.05, wall: Callable[[], float] = time.time
    ) -> None:
        self.factory = factory
        self.horizon = horizon
        self.wall = wall
        self._known: set[str] = set()

    def take(self, key: str, rate: float, n: int = 1) -> tuple[list[float], float]:
        """Take up to ``n`` consecutive slots for ``key``, as many as fit within the horizon (at least one):
        ``(slots, 0)`` with the wall times (seconds) at which each may be used, or ``([], at)`` when the next free
        slot is beyond the horizon; then nothing was taken and ``at`` is when to ask again.

        Several slots per round trip keep a busy worker from paying a database transaction for every post; the
        horizon still bounds what one worker can hold. The row moves by compare-and-swap, so two workers never get
        the same slot (a lost race reads the row again).
        """
        gap = 1000 / rate  # milliseconds; the row holds whole ones, so it moves on by the total rounded up
        horizon = int(self.horizon * 1000)
        with self.factory() as session, session.begin():
            if key not in self._known:
                self._create(session, key)
            for _ in range(20):
                now = int(self.wall() * 1000)
                current = session.scalar(select(_table.c.next_at).where(_table.c.key == key))
                start = max(int(current if current is not None else now), now)
                if start > now + horizon:
                    return [], (start - horizon) / 1000
                k = max(1, min(n, int((now + horizon - start) // gap) + 1))
                moved = session.execute(
                    update(_table)
                    .where(_table.c.key == key, _table.c.next_at == current)
                    .values(next_at=start + math.ceil(k * gap))  # never faster than ``rate``
                )
                if rowcount(moved):
                    return [(start + i * gap) / 1000 for i in range(k)], 0.0
        return [], self.wall() + 1.0 / rate  # heavy contention: ask again a slot later

    def _create(self, session: Session, key: str) -> None:
        now = int(self.wall() * 1000)
        if session.get_bind().dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            session.execute(pg_insert(_table).values(key=key, next_at=now).on_conflict_do_nothing())
        else:
            session.execute(insert(_table).values(key=key, next_at=now).prefix_with("OR IGNORE"))
        self._known.add(key)


class LocalBudget:
    """The same slots kept in memory, for SQLite: one process is the only worker (``blendwise run`` refuses a
    second), so a database round trip per post would buy nothing."""

    def __init__(self, *, horizon: float = 0.05, wall: Callable[[], float] = time.time) -> None:
        self.horizon = horizon
        self.wall = wall
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def take(self, key: str, rate: float, n: int = 1) -> tuple[list[float], float]:
        """See :meth:`SharedBudget.take`."""
        gap = 1.0 / rate
        with self._lock:
            now = self.wall()
            slot = max(self._next.get(key, now), now)
            if slot > now + self.horizon:
                return [], slot - self.horizon
            k = max(1, min(n, int((now + self.horizon - slot) / gap) + 1))
            self._next[key] = slot + k * gap
            return [slot + i * gap for i in range(k)], 0.0
