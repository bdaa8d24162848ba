"""Planning and draining are separate scheduler jobs: a backlog in the outbox never delays the next tick."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from bot.adapters.console import ConsoleAdapter, Sent
from bot.app import Runtime
from bot.clock import VirtualClock
from bot.storage.db import transaction
from bot.storage.models import Cohort, Delivery, Person
from bot.storage.types import to_ms
from tests.conftest import make_cohort
from tests.contract.drivers import wait_until
from tests.unit.helpers import build_runtime

PROGRAM = """
id: jobs
title: Jobs
tz: Europe/London
defaults:
  reminders: {enabled: false}
steps:
  - id: hello
    title: Hello
    kind: lesson
    body: Hello there.
"""
MONDAY_0930 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
BACKLOG = 5_000


@pytest.fixture
def rt(db_url: str, tmp_path: Path, console: ConsoleAdapter) -> Iterator[Runtime]:
    clock = VirtualClock(MONDAY_0930)
    runtime = build_runtime(
        db_url, tmp_path, clock, console, {"jobs": PROGRAM}, sender={"tick_seconds": 0.2, "drain_seconds": 0.2}
    )
    yield runtime
    runtime.db.dispose()


def test_a_backlog_of_5000_does_not_hold_up_the_next_tick(rt: Runtime, console: ConsoleAdapter) -> None:
    cohort = make_cohort(rt, "jobs", [("ana", "Europe/London")])
    rt.step()  # ana's lesson: the cohort is under way
    t = to_ms(MONDAY_0930)
    with transaction(rt.factory) as session:
        session.execute(
            insert(Delivery),
            [
                {
                    "key": f"backlog:{i}",
                    "purpose": "lead_prompt",
                    "priority": 5,
                    "cohort_id": cohort.id,
                    "due_at": t,
                    "state": "pending",
                    "attempts": 0,
                    "payload": {"text": f"Announcement {i}"},
                    "created_at": t,
                    "unsure": False,
                }
                for i in range(BACKLOG)
            ],
        )
    # The platform hangs on the first backlog post: the drain job is stuck in the middle of 5,000 rows.
    release = threading.Event()
    stuck = threading.Event()

    def hang(sent: Sent) -> None:
        if sent.user_id is None and not stuck.is_set():
            stuck.set()
            release.wait(timeout=60)

    console.listeners.append(hang)
    runner = threading.Thread(target=rt.run_forever, daemon=True)
    runner.start()
    try:
        wait_until(stuck.is_set, timeout=30, what="the drain to reach the backlog")
        with transaction(rt.factory) as session:
            c = session.get(Cohort, cohort.id)
            assert c is not None
            bo = rt.engine.person(session, "console", "console", "bo", tz="Europe/London")
            rt.engine.enroll(session, c, bo)

        def planned() -> bool:
            with rt.factory() as session:
                return bool(
                    session.scalar(
                        select(func.count())
                        .select_from(Delivery)
                        .join(Person, Person.id == Delivery.person_id)
                        .where(Person.user_id == "bo")
                    )
                )

        # The next tick plans bo's lesson while the drain is still stuck on the backlog.
        wait_until(planned, timeout=30, what="the tick to plan while the drain is busy")
        assert not release.is_set() and stuck.is_set()
    finally:
        release.set()
        rt.stop()
        runner.join(timeout=60)
    assert not runner.is_alive()
    with rt.factory() as session:
        left = session.scalar(select(func.count()).select_from(Delivery).where(Delivery.state == "sending"))
    assert left == 0  # the stop released whatever the drain still held
