"""Measure the outbox sender: drain throughput with a null adapter, and the share of a platform's allowed rate
reached with a slow, rate-limited one.

    python benchmarks/sender.py                          # 10,000 deliveries, SQLite, null + paced adapters
    python benchmarks/sender.py --deliveries 2000 --paced 300
    python benchmarks/sender.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench --workers 3

The data set is built with the same bulk inserts as ``benchmarks/tick.py`` (people, a cohort, enrolments,
progress and agenda rows, shaped like ``Engine.enroll``), then one burst tick makes the first lesson due for every
enrolment. Then:

* **null drain**: an adapter that does nothing (16 sends in flight), so the figure is the sender's own cost:
  claim, load, compose, record. With ``--workers N`` (PostgreSQL) N sender processes drain the same outbox.
* **paced drain**: a fresh outbox of ``--paced`` deliveries through an adapter that takes 50 ms per call and
  enforces one post per second per channel and 20 per second per workspace (a violation raises a 429). Reported:
  posts per second against the allowed 20/s, and the lost / duplicated / out-of-order counts.

The script reports figures; it never asserts timings.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import textwrap
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from benchmarks.adapters import NullAdapter, PacedAdapter
from benchmarks.tick import STEPS, build, make_burst
from bot.clock import VirtualClock
from bot.config import Settings
from bot.journeys.engine import Engine
from bot.journeys.library import Library
from bot.nudges.outbox import Sender
from bot.nudges.tick import tick
from bot.ports import Adapter
from bot.storage.db import make_engine, session_factory
from bot.storage.models import Delivery

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
BURST = NOW + timedelta(minutes=1)
PROGRAM = """
id: bench
title: Bench
tz: UTC
defaults:
  reminders: {enabled: false}
steps:
  - id: welcome
    title: Welcome
    kind: lesson
    body: "Welcome, {{ learner.first_name }}."
  - {id: lesson-1, title: Lesson 1, kind: lesson, body: One.}
  - id: quiz-1
    title: Quiz 1
    kind: quiz
    questions:
      - id: q1
        text: Yes?
        options: [{text: "Yes", correct: true}, {text: "No"}]
  - {id: lesson-2, title: Lesson 2, kind: lesson, body: Two.}
  - {id: reflection, title: Reflection, kind: reflection, question: "Why?"}
"""


def make_sender(url: str, content: Path, adapter: Adapter, clock: VirtualClock) -> Sender:
    settings = Settings.model_validate(
        {
            "database_url": url,
            "content_dir": str(content),
            "working_hours": {"start": "00:00", "end": "23:59", "days": ["mon", "tue", "wed", "thu", "fri", "sat"]},
            "quiet_hours": None,
        }
    )
    library = Library.from_dir(content)
    engine = Engine(library, settings, clock)
    db = make_engine(url)
    return Sender(session_factory(db), engine, {"console": adapter}, clock, batch=500, lease_seconds=600)


def plan(url: str, n: int) -> int:
    build(url, n, NOW)
    make_burst(url, BURST)
    db = make_engine(url)
    with session_factory(db)() as session, session.begin():
        planned = tick(session, BURST).total_planned
    db.dispose()
    return planned


def _worker(url: str, content: str, out: multiprocessing.Queue[int]) -> None:
    sender = make_sender(url, Path(content), NullAdapter(), VirtualClock(BURST))
    out.put(sender.drain().sent)


def null_drain(url: str, content: Path, workers: int) -> tuple[int, float]:
    start = time.perf_counter()
    if workers <= 1:
        sent = make_sender(url, content, NullAdapter(), VirtualClock(BURST)).drain().sent
    else:
        queue: multiprocessing.Queue[int] = multiprocessing.Queue()
        procs = [
            multiprocessing.Process(target=_worker, args=(url, str(content), queue)) for _ in range(workers)
        ]
        for p in procs:
            p.start()
        sent = sum(queue.get() for _ in procs)
        for p in procs:
            p.join()
    return sent, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--paced", type=int, default=400, help="deliveries for the paced run (0 to skip)")
    parser.add_argument("--workers", type=int, default=1, help="sender processes for the null drain")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="blendwise-sender-"))
    content = tmp / "content"
    (content / "bench").mkdir(parents=True)
    (content / "bench" / "program.yaml").write_text(textwrap.dedent(PROGRAM).lstrip())
    assert STEPS[0] == "welcome"

    url = args.database_url or f"sqlite:///{os.path.join(tmp, 'sender.db')}"
    planned = plan(url, args.deliveries)
    sent, took = null_drain(url, content, args.workers)
    backend = make_engine(url).dialect.name
    print(f"backend            {backend}")
    print(f"null drain         {sent:,} of {planned:,} sent in {took:.2f} s = {sent / took:,.0f} messages/s "
          f"({args.workers} worker{'s' if args.workers > 1 else ''})")

    if args.paced:
        url2 = args.database_url or f"sqlite:///{os.path.join(tmp, 'paced.db')}"
        plan(url2, args.paced)
        adapter = PacedAdapter()
        clock = VirtualClock(BURST)
        sender = make_sender(url2, content, adapter, clock)
        start = time.perf_counter()
        while True:
            sender.drain()
            with sender.factory() as session:
                left = session.scalar(
                    select(func.count()).select_from(Delivery).where(Delivery.state.in_(("pending", "sending")))
                )
            if not left:
                break
            clock.advance(timedelta(seconds=1))  # a 429's Retry-After
        took = time.perf_counter() - start
        posts = adapter.sent
        span = adapter.times[-1] - adapter.times[0] if len(posts) > 1 else took
        counts = Counter((d, p) for _, d, p, _ in posts)
        duplicated = sum(c - 1 for c in counts.values() if c > 1)
        lost = args.paced - len({d for d, _ in counts})
        by_user: dict[str, list[int]] = {}
        for user, d, _, _ in posts:
            by_user.setdefault(user, []).append(d)
        out_of_order = sum(1 for ids in by_user.values() if ids != sorted(ids))
        rate = (len(posts) - 1) / span if span > 0 else 0.0
        print(f"paced drain        {len(posts):,} posts in {took:.1f} s: {rate:.1f} posts/s of 20 allowed "
              f"({rate / 20:.0%}); 429s {adapter.rejected}; lost {lost}, duplicated {duplicated}, "
              f"learners out of order {out_of_order}")


if __name__ == "__main__":
    main()
