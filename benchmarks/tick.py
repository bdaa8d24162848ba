"""Measure the tick at scale: idle cost, burst cost and peak memory.

    python benchmarks/tick.py                       # 100,000 enrolments on a temporary SQLite file
    python benchmarks/tick.py --enrollments 20000   # smaller
    python benchmarks/tick.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

The data set is built with bulk inserts shaped exactly like what ``Engine.enroll`` writes (people, one cohort,
enrolments, ``step_progress`` and ``agenda`` rows), because enrolling 100,000 people one by one would measure the
set-up, not the tick. Then:

* **idle tick**: nothing is due (every agenda row lies in the future). Median of 50 ticks.
* **burst tick**: one step is due for *every* enrolment at the same instant (a cohort-wide unlock), so one tick
  claims 100,000 agenda rows and plans 100,000 outbox rows. Then a second tick at the same instant must plan
  nothing (idempotency), and its time is reported too.
* **peak memory**: the process's maximum resident set size (``ru_maxrss``) after the burst.

The script reports figures; it never asserts timings (targets: idle <= 5 ms, burst <= 2 s, <= 400 MB).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select, text

from bot.nudges.tick import tick
from bot.storage.db import make_engine, session_factory, upgrade
from bot.storage.models import AgendaItem, Cohort, Delivery, Enrollment, Person, StepProgress
from bot.storage.types import to_ms

STEPS = ["welcome", "lesson-1", "quiz-1", "lesson-2", "reflection"]
KINDS = ["lesson", "lesson", "quiz", "lesson", "reflection"]
CHUNK = 20_000


def build(url: str, n: int, now: datetime) -> None:
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    future = to_ms(now + timedelta(days=30))
    t_now = to_ms(now)
    with engine.begin() as conn:
        cohort_id = conn.execute(
            insert(Cohort).returning(Cohort.id),
            [{"name": "bench", "program_id": "bench", "platform": "console", "workspace": "bench",
              "start_date": date(2026, 3, 2), "tz": "UTC", "channel": "bench", "created_at": now}],
        ).scalar_one()
    for start in range(0, n, CHUNK):
        ids = range(start + 1, min(n, start + CHUNK) + 1)
        with engine.begin() as conn:
            conn.execute(
                insert(Person),
                [{"id": i, "platform": "console", "workspace": "bench", "user_id": f"u{i}", "name": f"Learner {i}",
                  "tz": "Europe/London", "roles": "", "opted_out": False, "tz_locked": False, "created_at": now}
                 for i in ids],
            )
            conn.execute(
                insert(Enrollment),
                [{"id": i, "registration": str(uuid.UUID(int=i)), "person_id": i, "cohort_id": cohort_id,
                  "program_id": "bench", "enrolled_at": now, "status": "active", "nudges_ignored": 0,
                  "auto_paused": False} for i in ids],
            )
            progress = []
            agenda = []
            for i in ids:
                for k, (step, kind) in enumerate(zip(STEPS, KINDS, strict=True)):
                    pid = (i - 1) * len(STEPS) + k + 1
                    progress.append({"id": pid, "enrollment_id": i, "step_id": step, "kind": kind, "required": True,
                                     "state": "locked", "waiting_on": 0, "unlock_at": future, "attempts": 0})
                    agenda.append({"progress_id": pid, "enrollment_id": i, "action": "deliver", "seq": 0,
                                   "fire_at": future + k * 86_400_000})
                    agenda.append({"progress_id": pid, "enrollment_id": i, "action": "remind", "seq": 1,
                                   "fire_at": future + k * 86_400_000 + 86_400_000})
            conn.execute(insert(StepProgress), progress)
            conn.execute(insert(AgendaItem), agenda)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    del t_now
    engine.dispose()


def make_burst(url: str, now: datetime) -> None:
    """Make the first step due for every enrolment at ``now`` (a cohort-wide unlock)."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            AgendaItem.__table__.update()
            .where(AgendaItem.action == "deliver", AgendaItem.progress_id.in_(
                select(StepProgress.id).where(StepProgress.step_id == STEPS[0])))
            .values(fire_at=to_ms(now))
        )
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE agenda"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--enrollments", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="blendwise-bench-")
    url = args.database_url or f"sqlite:///{os.path.join(tmp, 'bench.db')}"
    now = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    n = args.enrollments

    t0 = time.perf_counter()
    build(url, n, now)
    setup = time.perf_counter() - t0

    engine = make_engine(url)
    factory = session_factory(engine)

    def one_tick(at: datetime) -> tuple[float, int]:
        with factory() as session, session.begin():
            start = time.perf_counter()
            result = tick(session, at)
        return time.perf_counter() - start, result.total_planned

    # Warm the connection and caches, then measure idle ticks.
    one_tick(now)
    idle = [one_tick(now + timedelta(seconds=i))[0] for i in range(1, 51)]

    make_burst(url, now + timedelta(minutes=1))
    burst_at = now + timedelta(minutes=1)
    burst, planned = one_tick(burst_at)
    again, planned_again = one_tick(burst_at)
    with factory() as session:
        outbox = session.scalar(select(func.count()).select_from(Delivery))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    backend = engine.dialect.name
    print(f"backend            {backend}")
    print(f"enrollments        {n:,} ({n * len(STEPS):,} step rows, {n * len(STEPS) * 2:,} agenda rows)")
    print(f"setup              {setup:.1f} s (bulk inserts, not part of the targets)")
    print(f"idle tick          median {statistics.median(idle) * 1000:.2f} ms, p95 "
          f"{sorted(idle)[int(len(idle) * 0.95) - 1] * 1000:.2f} ms over {len(idle)} ticks   (target <= 5 ms)")
    print(f"burst tick         {burst:.2f} s, planned {planned:,} deliveries            (target <= 2 s)")
    print(f"repeat tick        {again * 1000:.1f} ms, planned {planned_again} (idempotent: must be 0)")
    print(f"outbox rows        {outbox:,}")
    print(f"peak memory (RSS)  {rss_mb:.0f} MB                                   (target <= 400 MB)")
    engine.dispose()


if __name__ == "__main__":
    main()
