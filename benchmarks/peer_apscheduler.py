"""The naive peer: APScheduler 3 with one job per delivery in a SQLAlchemyJobStore.

    python benchmarks/peer_apscheduler.py --deliveries 2000
    python benchmarks/peer_apscheduler.py --deliveries 2000 --database-url postgresql+psycopg://...

This is the design Blendwise said it would beat (STYLE.md: "One scheduler job per learner ... APScheduler 3's job
store loads every due job and cannot be shared by workers"). It plans each delivery as one ``date`` job in a
SQLAlchemy job store on the same kind of database, then lets the scheduler dispatch them. Planning is ``add_job``
per delivery; dispatch is the scheduler loading due jobs, running them on its thread pool and deleting each one
from the store.

What a job does is given by the caller (``work``), so the comparison is of the *same* work:
``benchmarks/pipeline.py`` makes each job do exactly what Blendwise's sender does for one delivery, the naive way
(one session per job, one ORM ``get`` per row): load the learner's step progress, enrolment, person and cohort,
render the same card with the same :class:`~bot.journeys.compose.Composer` and templates, hand each part to the
same in-process null adapter, then record the ``delivered`` learning event and open the step. Run as a script,
with no ``work``, a job only hands a one-line message to a list (the cheapest possible job).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import text

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the job store names jobs "peer_apscheduler:..."

from bot.storage.db import make_engine

TABLE = "peer_apscheduler_jobs"

_lock = threading.Lock()
_sent: list[tuple[int, str]] = []
_done = threading.Event()
_expected = 0
#: What a job does for its delivery (set by :func:`run_peer`); ``None``: only record a one-line message.
_work: Callable[[int], object] | None = None


def deliver(person_id: int, what: str, ref: int = 0) -> None:
    """The job: do the delivery's work (see the module docstring), then count it."""
    if _work is not None:
        _work(ref)
    with _lock:
        _sent.append((person_id, f"{what} for learner {person_id} ({ref})"))
        if len(_sent) >= _expected:
            _done.set()


@dataclass
class PeerResult:
    deliveries: int
    plan_s: float
    dispatch_s: float
    executed: int
    duplicates: int
    #: CPU seconds of this process (every thread) in each phase: comparable on a loaded machine, unlike wall time.
    plan_cpu: float = 0.0
    dispatch_cpu: float = 0.0

    @property
    def total_s(self) -> float:
        return self.plan_s + self.dispatch_s


def run_peer(
    url: str,
    deliveries: Sequence[tuple[int, str, int]],
    *,
    work: Callable[[int], object] | None = None,
    timeout: float = 3600.0,
) -> PeerResult:
    """Plan ``deliveries`` ``(person id, what, ref)`` as one job each, dispatch them all, and time both phases;
    each job calls ``work(ref)``."""
    # The job store names the job "peer_apscheduler:deliver"; when this file runs as __main__ that is another
    # module object, so the counters must be the imported module's.
    import peer_apscheduler as jobs

    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    # The same engine set-up as Blendwise's (SQLite WAL and synchronous=NORMAL), so the comparison is of
    # designs, not of database tuning.
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
    jobs._sent.clear()
    jobs._done.clear()
    jobs._expected = len(deliveries)
    jobs._work = work
    store = SQLAlchemyJobStore(engine=engine, tablename=TABLE)
    scheduler = BackgroundScheduler(
        jobstores={"default": store},
        executors={"default": ThreadPoolExecutor(10)},
        # No misfire limit: a job that runs late must still run (the default 1 s grace would silently drop
        # deliveries once the store falls behind).
        job_defaults={"misfire_grace_time": None, "coalesce": False, "max_instances": 1},
        timezone=UTC,
    )
    # Paused, so planning only writes jobs; dispatch starts when we resume.
    scheduler.start(paused=True)
    run_at = datetime.now(UTC) + timedelta(seconds=1)
    t0, c0 = time.perf_counter(), time.process_time()
    for i, (person_id, what, ref) in enumerate(deliveries):
        scheduler.add_job(
            "peer_apscheduler:deliver", "date", run_date=run_at, args=[person_id, what, ref], id=f"d{i}",
            replace_existing=False,
        )
    plan_s, plan_cpu = time.perf_counter() - t0, time.process_time() - c0
    # Jobs were due while we planned; start the dispatch clock when the scheduler is let go.
    t1, c1 = time.perf_counter(), time.process_time()
    scheduler.resume()
    jobs._done.wait(timeout if deliveries else 0)
    dispatch_s, dispatch_cpu = time.perf_counter() - t1, time.process_time() - c1
    scheduler.shutdown(wait=True)
    executed = len(jobs._sent)
    duplicates = executed - len(set(jobs._sent))
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
    engine.dispose()
    return PeerResult(len(deliveries), plan_s, dispatch_s, executed, duplicates, plan_cpu, dispatch_cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{os.path.join(tempfile.mkdtemp(prefix='blendwise-peer-'), 'peer.db')}"
    result = run_peer(url, [(i, "lesson", i) for i in range(args.deliveries)])
    print(f"peer (APScheduler, one job per delivery) on {url.split(':')[0]}")
    print(f"plan      {result.plan_s:8.2f} s")
    print(f"dispatch  {result.dispatch_s:8.2f} s   executed {result.executed:,}, duplicates {result.duplicates}")
    print(f"total     {result.total_s:8.2f} s   {result.deliveries / result.total_s:,.0f} deliveries/s")


if __name__ == "__main__":
    main()
