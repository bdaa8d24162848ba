"""Measure the whole delivery pipeline: enrol, tick, drain; and the naive APScheduler peer in the same run.

    python benchmarks/pipeline.py --learners 10000                      # SQLite, null adapter, with the peer
    python benchmarks/pipeline.py --learners 100000 --peer-learners 10000
    python benchmarks/pipeline.py --learners 600 --adapter paced --no-peer
    python benchmarks/pipeline.py --learners 100000 --workers 3 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/blendwise_bench

What one run does, on a fresh database (a temporary SQLite file, or the PostgreSQL database given, whose public
schema is dropped first):

1. **enrol**: N people (bulk-inserted, not timed) are enrolled in one cohort of ``feedback-fundamentals`` with
   ``Engine.enroll_many``: every ``step_progress``, ``agenda`` and ``attendance`` row and the learning events.
2. **tick**: the virtual clock moves to the first lesson's unlock and one tick plans the due deliveries.
3. **drain**: the outbox is drained through an in-process adapter by K worker processes (``--workers``; one works
   in this process). ``null`` does nothing; ``paced`` takes 50 ms a call and enforces 1 post/s per channel and
   20/s per workspace like Slack, answering an over-limit call with a 429 (``AdapterError`` with ``retry_after``).
   The drain's clock is the virtual instant plus real elapsed time, so backoffs and pacing really wait.
4. **checks**: every planned delivery sent (0 lost), no message sent twice (0 duplicated), and each learner's
   messages in the order their deliveries became due (0 out of order).
5. **peer**: ``peer_apscheduler.run_peer`` plans and dispatches the *same* deliveries (one APScheduler job each in a
   SQLAlchemyJobStore on the same kind of database) and the plan + dispatch speed-up is printed beside ours.
   ``--peer-learners M`` runs the peer on the first M learners' deliveries only and says so; its time is then
   scaled linearly to N and marked as an extrapolation.

It reports figures and never asserts timings. Targets (issue 10): enrol 100,000 <= 20 s; drain >= 5,000 msg/s on
SQLite and >= 5,000/s aggregate on PostgreSQL with 3 workers; plan + dispatch >= 20x the peer at 10,000 and
100,000; paced: >= 95 % of the allowed rate with 0 lost, 0 duplicated, 0 out of order.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import func, insert, select, text

from benchmarks.adapters import NullAdapter, PacedAdapter
from bot.app import Runtime, build
from bot.clock import VirtualClock
from bot.config import Settings
from bot.nudges.purposes import ChannelPost
from bot.ports import Recipient
from bot.states import StepState, Verb
from bot.storage.db import make_engine, transaction
from bot.storage.events import object_id
from bot.storage.models import AgendaItem, Cohort, Delivery, Enrollment, LearningEvent, Person, StepProgress
from bot.storage.types import to_ms

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = "feedback-fundamentals"
START = date(2026, 3, 2)  # a Monday
ENROL_AT = datetime(2026, 2, 27, 9, 0, tzinfo=UTC)  # the Friday before: everyone is enrolled ahead of time
WORKSPACE = "bench"


class FlowingClock:
    """The virtual instant the drain starts at, plus real elapsed wall time (shared by worker processes)."""

    def __init__(self, base: datetime, wall_start: float) -> None:
        self.base = base
        self.wall_start = wall_start

    def now(self) -> datetime:
        return self.base + timedelta(seconds=time.time() - self.wall_start)


# ---------------------------------------------------------------------- set-up
def settings_for(url: str) -> Settings:
    return Settings.model_validate(
        {
            "database_url": url,
            "content_dir": str(ROOT / "content"),
            "timezone": "Europe/London",
            "platforms": ["console"],
        }
    )


def fresh_database(url: str) -> None:
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def runtime(url: str, clock: Any, adapter: NullAdapter, *, migrate: bool = False) -> Runtime:
    return build(settings_for(url), clock=clock, adapters={"console": adapter}, migrate=migrate)


def add_people(rt: Runtime, n: int) -> None:
    rows = [
        {"platform": "console", "workspace": WORKSPACE, "user_id": f"u{i:06d}", "name": f"Learner {i}",
         "tz": "Europe/London", "roles": "", "tz_locked": False, "opted_out": False, "created_at": ENROL_AT}
        for i in range(n)
    ]
    with transaction(rt.factory) as session:
        for start in range(0, n, 20_000):
            session.execute(insert(Person), rows[start : start + 20_000])


# ---------------------------------------------------------------------- draining
def drain_until_empty(rt: Runtime, deadline: float) -> None:
    """Drain until no delivery is pending or sending, waiting for backoffs; stop at ``deadline`` (wall time)."""
    while time.time() < deadline:
        result = rt.drain()
        if result.sent or result.retried or result.skipped or result.failed:
            continue
        with rt.factory() as session:
            left = session.execute(
                select(func.count(), func.min(Delivery.due_at)).where(Delivery.state.in_(("pending", "sending")))
            ).one()
        if not left[0]:
            return
        wait = (left[1] - rt.clock.now()).total_seconds() if left[1] is not None else 0.05
        time.sleep(min(max(wait, 0.01), 0.5))


def _worker(
    url: str, base: datetime, wall_start: float, kind: str, deadline: float, out: Any, ready: Any
) -> None:
    """One worker process: start up (imports, content, database), wait until every worker has, then drain."""
    adapter = PacedAdapter() if kind == "paced" else NullAdapter()
    rt = runtime(url, FlowingClock(base, wall_start), adapter)
    ready.wait(timeout=600)  # a worker that failed to start breaks the barrier instead of hanging the rest
    started, c0 = time.time(), time.process_time()
    drain_until_empty(rt, deadline)
    cpu = time.process_time() - c0
    rt.db.dispose()
    out.put((adapter.sent, adapter.rejected, started, cpu))


@dataclass
class Figures:
    backend: str = ""
    learners: int = 0
    enrol_s: float = 0.0
    tick_s: float = 0.0
    planned: int = 0
    drain_s: float = 0.0
    #: CPU seconds of this process (all its threads) for the tick and the drain; with worker processes, the drain's
    #: is the sum of theirs after start-up (the database server's CPU is in neither).
    tick_cpu: float = 0.0
    drain_cpu: float | None = None
    #: With worker processes: seconds from the drain's start until every worker had started up (spawn, imports,
    #: content, database connections), counted in ``drain_s``.
    startup_s: float | None = None
    #: seconds from the first send to the last (one worker only): the drain without its start-up and last poll.
    send_span: float = 0.0
    sent: int = 0
    deliveries_sent: int = 0
    rejected: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    peer: Any = None
    peer_scale: float = 1.0
    peer_sent: int = 0
    notes: list[str] = field(default_factory=list)


def check(rt: Runtime, sent: list[tuple[str, int, int, str]], figures: Figures) -> None:
    """0 lost, 0 duplicated, 0 learners out of order: compare what the adapters got with the outbox."""
    with rt.factory() as session:
        rows = session.execute(
            select(Delivery.id, Delivery.state, Delivery.due_at, Delivery.priority, Person.user_id)
            .outerjoin(Person, Person.id == Delivery.person_id)
        ).all()
    figures.lost = sum(1 for r in rows if r.state in ("pending", "sending", "failed"))
    figures.deliveries_sent = sum(1 for r in rows if r.state == "sent")
    seen: set[tuple[str, int, int, str]] = set()
    figures.duplicated = 0
    for item in sent:
        if item in seen:
            figures.duplicated += 1
        seen.add(item)
    # Per learner, the order deliveries became due (due_at, then priority, then id); the adapter's order must
    # follow it, each delivery's parts together.
    due_order = {r.id: (r.due_at, r.priority, r.id) for r in rows}
    by_learner: dict[str, list[int]] = defaultdict(list)
    for channel, delivery_id, _, _ in sent:
        if channel.startswith("D-") and delivery_id in due_order:
            ids = by_learner[channel]
            if not ids or ids[-1] != delivery_id:
                ids.append(delivery_id)
    figures.out_of_order = sum(
        1 for ids in by_learner.values() if ids != sorted(ids, key=due_order.__getitem__) or len(set(ids)) != len(ids)
    )


def run(args: argparse.Namespace) -> Figures:
    tmp = tempfile.mkdtemp(prefix="blendwise-pipeline-")
    url = args.database_url or f"sqlite:///{os.path.join(tmp, 'pipeline.db')}"
    fresh_database(url)
    figures = Figures(learners=args.learners)
    clock = VirtualClock(ENROL_AT)
    adapter: NullAdapter = PacedAdapter() if args.adapter == "paced" else NullAdapter()
    rt = runtime(url, clock, adapter, migrate=True)
    figures.backend = rt.db.dialect.name
    add_people(rt, args.learners)

    # 1. enrol
    with transaction(rt.factory) as session:
        cohort = rt.engine.create_cohort(
            session, name="bench", program_id=PROGRAM, platform="console", workspace=WORKSPACE, start=START,
            channel="C-BENCH",
        )
        people = session.execute(select(Person.id, Person.workspace, Person.tz)).all()
        t0 = time.perf_counter()
        rt.engine.enroll_many(session, cohort, people)
    figures.enrol_s = time.perf_counter() - t0  # includes the commit
    if figures.backend == "postgresql":
        with rt.db.begin() as conn:
            conn.execute(text("ANALYZE"))

    # 2. tick at the first lesson's unlock: every learner's first lesson (and the session invites) due at once.
    with rt.factory() as session:
        first = session.scalar(
            select(func.min(AgendaItem.fire_at)).where(AgendaItem.action == "deliver", AgendaItem.fire_at > 0)
        )
        assert first is not None
        cohort = session.get(Cohort, cohort.id)
    clock.set(first)
    t0, c0 = time.perf_counter(), time.process_time()
    result = rt.tick()
    figures.tick_s, figures.tick_cpu = time.perf_counter() - t0, time.process_time() - c0
    figures.planned = result.total_planned

    # 3. drain
    if not args.drain:
        figures.notes.append("drain skipped (--no-drain): enrol and tick only")
        return _peer(args, rt, url, tmp, figures)
    base = clock.now()
    wall_start = time.time()
    deadline = wall_start + args.max_drain_seconds
    sent: list[tuple[str, int, int, str]] = []
    t0, c0 = time.perf_counter(), time.process_time()
    if args.workers <= 1:
        rt.sender.clock = FlowingClock(base, wall_start)
        rt.clock = rt.sender.clock
        drain_until_empty(rt, deadline)
        sent, figures.rejected = adapter.sent, adapter.rejected
        figures.send_span = adapter.times[-1] - adapter.times[0] if len(adapter.times) > 1 else 0.0
        figures.drain_cpu = time.process_time() - c0
    else:
        if figures.backend == "sqlite":
            figures.notes.append("several workers on SQLite: the embedded default is meant for one process")
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        # The workers drain together once all have started up, so the start-up can be reported on its own.
        ready = ctx.Barrier(args.workers)
        procs = [
            ctx.Process(target=_worker, args=(url, base, wall_start, args.adapter, deadline, queue, ready))
            for _ in range(args.workers)
        ]
        for p in procs:
            p.start()
        figures.drain_cpu = 0.0
        for _ in procs:
            got, rejected, started, cpu = queue.get()
            sent.extend(got)
            figures.rejected += rejected
            figures.drain_cpu += cpu
            figures.startup_s = max(figures.startup_s or 0.0, started - wall_start)
        for p in procs:
            p.join()
    figures.drain_s = time.perf_counter() - t0
    figures.sent = len(sent)
    check(rt, sent, figures)
    return _peer(args, rt, url, tmp, figures)


def naive_delivery(rt: Runtime, adapter: NullAdapter) -> Callable[[int], None]:
    """The peer's job: one delivery done the naive way, with the same work as our sender does for it.

    One session per job and one ORM ``get`` per row: the delivery, its person and cohort; the same renderer (the
    sender's purpose registry, so the same composer, templates and card); every part handed to the same null
    adapter; then, for a step card, the ``delivered`` learning event recorded and the step opened.
    """
    purposes = rt.sender.purposes

    def work(delivery_id: int) -> None:
        with rt.factory() as session, session.begin():
            d = session.get(Delivery, delivery_id)
            assert d is not None
            purpose = purposes.get(d.purpose)
            assert purpose is not None and purpose.render is not None
            out = purpose.render(session, d)
            if isinstance(out, ChannelPost):
                out = out.message
            messages = out if isinstance(out, list) else [out] if out is not None else []
            cohort = session.get(Cohort, d.cohort_id) if d.cohort_id else None
            if d.person_id is None:
                assert cohort is not None and cohort.channel
                for message in messages:
                    adapter.send_channel(cohort.workspace, cohort.channel, message)
                return
            person = session.get(Person, d.person_id)
            assert person is not None
            to = Recipient(person.platform, person.workspace, person.user_id, person.name,
                           rt.engine.person_tz(person, cohort))
            ref = None
            for message in messages:
                ref = adapter.send_direct(to, message)
            sp = session.get(StepProgress, d.progress_id) if d.progress_id else None
            if sp is None or not purpose.opens_step or ref is None:
                return
            enrollment = session.get(Enrollment, sp.enrollment_id)
            assert enrollment is not None
            now = rt.clock.now()
            session.execute(insert(LearningEvent), [{
                "ts": to_ms(now), "person_id": person.id, "verb": Verb.DELIVERED, "object_type": "step",
                "object_id": object_id(enrollment.program_id, sp.step_id), "enrollment_id": enrollment.id,
                "cohort_id": enrollment.cohort_id, "result": None,
                "context": {"extensions": {"delivery_id": d.id}},
            }])
            sp.message_ref = ref.encode()
            if sp.state == StepState.LOCKED:
                sp.state, sp.opened_at = StepState.OPEN, now

    return work


def _peer(args: argparse.Namespace, rt: Runtime, url: str, tmp: str, figures: Figures) -> Figures:
    """4. the peer, on the same deliveries."""
    if args.peer:
        from peer_apscheduler import run_peer

        with rt.factory() as session:
            deliveries = [
                (row.person_id or 0, row.purpose, row.id)
                for row in session.execute(
                    select(Delivery.person_id, Delivery.purpose, Delivery.id).order_by(Delivery.person_id, Delivery.id)
                )
            ]
        limit = args.peer_learners or args.learners
        if limit < args.learners:
            keep = {d[0] for d in deliveries if d[0]} and sorted({d[0] for d in deliveries if d[0]})[:limit]
            chosen = set(keep)
            subset = [d for d in deliveries if d[0] in chosen]
            figures.peer_scale = len(deliveries) / max(1, len(subset))
            deliveries = subset
        peer_url = url if figures.backend == "postgresql" else f"sqlite:///{os.path.join(tmp, 'peer.db')}"
        peer_adapter = NullAdapter()
        figures.peer = run_peer(peer_url, deliveries, work=naive_delivery(rt, peer_adapter))
        figures.peer_sent = len(peer_adapter.sent)
    rt.db.dispose()
    return figures


def report(f: Figures, args: argparse.Namespace) -> None:
    ours = f.tick_s + f.drain_s
    load = os.getloadavg()[0]
    print(f"backend           {f.backend}, adapter {args.adapter}, workers {args.workers}, "
          f"load average {load:.1f} on {os.cpu_count()} cores")
    print(f"learners          {f.learners:,} on {PROGRAM}")
    print(f"enrol             {f.enrol_s:8.2f} s   {f.enrol_s / max(f.learners, 1) * 1e6:,.0f} µs a learner  "
          f"(target 100,000 <= 20 s)")
    print(f"tick              {f.tick_s:8.2f} s   planned {f.planned:,} deliveries")
    if args.drain:
        rate = f.sent / f.drain_s if f.drain_s else 0.0
        print(f"drain             {f.drain_s:8.2f} s   {f.sent:,} messages, {rate:,.0f} messages/s  "
              f"(target >= 5,000/s)")
        if f.startup_s is not None:
            after = f.drain_s - f.startup_s
            print(f"  of which         {f.startup_s:8.2f} s   starting {args.workers} worker processes (spawn, imports, "
                  f"content, connections); after start-up {f.sent / after if after > 0 else 0:,.0f} messages/s")
        if args.adapter == "paced":
            print(f"paced             {rate / PacedAdapter().rate * 100:5.1f} % of the allowed 20/s, "
                  f"{f.rejected} calls answered 429")
            if f.send_span:
                print(f"paced, sending    {(f.sent - 1) / f.send_span / PacedAdapter().rate * 100:5.1f} % from the "
                      f"first send to the last ({f.send_span:.2f} s; the figure above is the whole drain)")
        print(f"checks            lost {f.lost}, duplicated {f.duplicated}, learners out of order {f.out_of_order} "
              f"({f.deliveries_sent:,} deliveries sent)")
        print(f"plan + dispatch   {ours:8.2f} s   (tick + drain)")
        if f.drain_cpu is not None:
            cpu = f.tick_cpu + f.drain_cpu
            workers = f" (the {args.workers} workers' after start-up)" if f.startup_s is not None else ""
            print(f"CPU time          tick {f.tick_cpu:.2f} s + drain {f.drain_cpu:.2f} s{workers} = {cpu:.2f} s "
                  f"({f.sent / f.drain_cpu if f.drain_cpu else 0:,.0f} messages per CPU second)")
    for note in f.notes:
        print(f"note              {note}")
    if f.peer is not None:
        p = f.peer
        scale = f.peer_scale
        label = "peer (APScheduler, one job per delivery)"
        print(f"{label}: {p.deliveries:,} deliveries, plan {p.plan_s:.2f} s, dispatch {p.dispatch_s:.2f} s, "
              f"executed {p.executed:,} ({f.peer_sent:,} messages rendered and sent), duplicates {p.duplicates}")
        if f.drain_cpu is not None and args.drain:
            ours_cpu = f.tick_cpu + f.drain_cpu
            print(f"peer CPU time     plan {p.plan_cpu:.2f} s + dispatch {p.dispatch_cpu:.2f} s: "
                  f"{(p.plan_cpu + p.dispatch_cpu) * scale / ours_cpu if ours_cpu else 0:.1f}x our CPU time "
                  f"on plan + dispatch (comparable under load; the target is on wall time)")
        if scale != 1.0:
            print(f"peer scaled       x{scale:.2f} to all {f.planned:,} deliveries: {p.total_s * scale:.1f} s "
                  f"(EXTRAPOLATED linearly from --peer-learners {args.peer_learners:,}, not measured)")
        extrapolated = " [extrapolated peer]" if scale != 1.0 else ""
        if args.drain:
            print(f"speed-up          {p.total_s * scale / ours if ours else 0:6.1f}x on plan + dispatch "
                  f"(target >= 20x){extrapolated}")
        else:
            print(f"speed-up          {p.plan_s * scale / f.tick_s if f.tick_s else 0:6.1f}x on planning alone "
                  f"(peer add_job vs our tick; no drain, so no plan + dispatch figure){extrapolated}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--learners", type=int, default=10_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--adapter", choices=("null", "paced"), default="null")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the APScheduler peer on the same deliveries (default: yes)")
    parser.add_argument("--peer-learners", type=int, default=None,
                        help="run the peer on this many learners' deliveries and extrapolate (says so)")
    parser.add_argument("--max-drain-seconds", type=float, default=1800)
    parser.add_argument("--drain", action=argparse.BooleanOptionalAction, default=True,
                        help="drain the outbox (default: yes); --no-drain measures enrol and tick only")
    args = parser.parse_args()
    # Retries and 429s are counted in the report; one log line per retried delivery would drown it.
    logging.basicConfig(level=logging.ERROR)
    report(run(args), args)


if __name__ == "__main__":
    main()
