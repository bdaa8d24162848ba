"""The outbox: idempotent planning, retries with backoff, failures, crash recovery and multi-part resumption."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot.adapters.console import ConsoleAdapter, Sent
from bot.app import Runtime
from bot.clock import VirtualClock
from bot.errors import AdapterError
from bot.storage.db import transaction
from bot.storage.models import AgendaItem, Cohort, Delivery, Person
from tests.conftest import make_cohort
from tests.unit.helpers import build_runtime, deliveries, events, progress, row_counts

PARAGRAPH = " ".join(["Practice turns knowledge into a habit, one small and deliberate step at a time."] * 11)
PROGRAM = f"""
id: outbox
title: Outbox
tz: Europe/London
defaults:
  reminders: {{enabled: false}}
steps:
  - id: short
    title: Short lesson
    kind: lesson
    body: Short and sweet.
  - id: long
    title: Long lesson
    kind: lesson
    unlock: {{day: 1}}
    body: |
      {PARAGRAPH}

      {PARAGRAPH}

      {PARAGRAPH}
"""

MONDAY_0930 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
TUESDAY_0930 = datetime(2026, 3, 3, 9, 30, tzinfo=UTC)


@pytest.fixture
def rt(db_url: str, tmp_path: Path, clock: VirtualClock, console: ConsoleAdapter) -> Iterator[Runtime]:
    runtime = build_runtime(db_url, tmp_path, clock, console, {"outbox": PROGRAM}, sender={"max_attempts": 3})
    make_cohort(
        runtime, "outbox", [("ana", "Europe/London"), ("bo", "Europe/London"), ("cy", "Europe/London")]
    )
    yield runtime
    runtime.db.dispose()


def only(rt: Runtime, purpose: str = "lesson", user: str = "ana") -> Delivery:
    [d] = deliveries(rt, purpose, user)
    return d


def test_a_second_tick_plans_nothing(rt, clock):
    clock.set(MONDAY_0930)
    first = rt.tick()
    assert first.planned["deliver"] == 3
    before = row_counts(rt)
    second = rt.tick()
    assert (second.claimed, second.total_planned) == (0, 0)
    assert row_counts(rt) == before
    clock.advance(timedelta(minutes=1))
    assert rt.tick().total_planned == 0
    assert row_counts(rt) == before


def test_replanning_the_same_agenda_rows_creates_no_duplicates(rt, clock):
    """Two ticks racing at the same instant: both claim the rows, the unique keys keep one outbox row each."""
    clock.set(MONDAY_0930)
    with rt.factory() as session:
        due = [
            {c: getattr(a, c) for c in ("progress_id", "enrollment_id", "action", "seq", "fire_at", "expires_at")}
            for a in session.scalars(select(AgendaItem).where(AgendaItem.fire_at <= MONDAY_0930))
        ]
    rt.tick()
    before = row_counts(rt)
    # The racing tick claimed the same rows before the first one deleted them: put them back and tick again.
    with transaction(rt.factory) as session:
        session.add_all([AgendaItem(**row) for row in due])
    again = rt.tick()
    assert again.claimed == 3
    assert again.total_planned == 0
    assert row_counts(rt) == before
    keys = [d.key for d in deliveries(rt)]
    assert len(keys) == len(set(keys)) == 3


def test_retryable_failure_backs_off_then_sends(rt, clock, console):
    clock.set(MONDAY_0930)
    rt.tick()
    console.fail_next(AdapterError("platform unavailable", retryable=True))
    result = rt.drain()
    assert (result.retried, result.sent) == (1, 2)  # ana's failed; bo and cy were sent
    failed = deliveries(rt, "lesson")[0]
    assert (failed.state, failed.attempts, failed.last_error) == ("pending", 1, "platform unavailable")
    assert failed.due_at == MONDAY_0930 + timedelta(seconds=30)
    clock.advance(timedelta(seconds=29))
    assert rt.drain().sent == 0
    console.fail_next(AdapterError("still unavailable", retryable=True))
    clock.advance(timedelta(seconds=1))
    assert rt.drain().retried == 1
    again = deliveries(rt, "lesson")[0]
    assert (again.attempts, again.due_at) == (
        2,
        MONDAY_0930 + timedelta(seconds=30 + 60),
    )  # the backoff doubles
    clock.set(MONDAY_0930 + timedelta(seconds=90))
    assert rt.drain().sent == 1
    sent = deliveries(rt, "lesson")[0]
    assert (sent.state, sent.attempts, sent.last_error) == ("sent", 3, None)
    assert sent.message_ref is not None and sent.message_ref.startswith("console|")
    assert sum(1 for s in console.sent if s.message.title == "Short lesson") == 3


def test_retry_after_is_honoured(rt, clock, console):
    clock.set(MONDAY_0930)
    rt.tick()
    console.fail_next(AdapterError("rate limited", retryable=True, retry_after=120))
    rt.drain()
    d = deliveries(rt, "lesson")[0]
    assert (d.state, d.due_at) == ("pending", MONDAY_0930 + timedelta(seconds=120))
    clock.advance(timedelta(seconds=119))
    assert rt.drain().sent == 0
    clock.advance(timedelta(seconds=1))
    assert rt.drain().sent == 1


def test_non_retryable_failure_fails_after_one_attempt(rt, clock, console):
    clock.set(MONDAY_0930)
    rt.tick()
    console.fail_next(AdapterError("user not found", retryable=False))
    result = rt.drain()
    assert (result.failed, result.sent) == (1, 2)
    d = deliveries(rt, "lesson")[0]
    assert (d.state, d.attempts, d.last_error) == ("failed", 1, "user not found")
    clock.advance(timedelta(hours=1))
    assert rt.drain().sent == 0
    assert events(rt, "delivered", "ana") == []


def test_max_attempts_then_failed(rt, clock, console):
    clock.set(MONDAY_0930)
    rt.tick()
    outcomes = []
    for _ in range(3):
        console.fail_next(AdapterError("flaky", retryable=True))  # ana's row first, then only hers is left
        r = rt.drain()
        outcomes.append((r.retried, r.failed))
        clock.advance(timedelta(minutes=5))
    assert outcomes == [(1, 0), (1, 0), (0, 1)]
    d = deliveries(rt, "lesson")[0]
    assert (d.state, d.attempts, d.last_error) == ("failed", 3, "flaky")  # max_attempts is 3 in this runtime
    assert rt.drain().sent == 0


def test_an_expired_lease_is_reconciled_and_not_sent_twice_when_the_platform_has_it(rt, clock, console):
    clock.set(MONDAY_0930)
    rt.step()
    d = only(rt)
    # A crash after the platform call, before the result was recorded: the row is left in 'sending' under a
    # lease that then runs out. Any worker's next drain reclaims it; nobody has to restart.
    with transaction(rt.factory) as session:
        session.execute(
            update(Delivery)
            .where(Delivery.id == d.id)
            .values(state="sending", message_ref=None, claimed_by="dead-worker", lease_until=MONDAY_0930)
        )
    clock.advance(timedelta(minutes=10))
    result = rt.drain()
    assert (result.reclaimed, result.sent) == (1, 1)
    fixed = only(rt)
    found = console.find_delivery(None, d.id)
    assert found is not None
    assert (fixed.state, fixed.message_ref, fixed.unsure, fixed.claimed_by) == ("sent", found.encode(), False, None)
    assert rt.drain().sent == 0
    assert sum(1 for s in console.messages_to("ana") if s.message.title == "Short lesson") == 1


def test_a_reclaimed_row_the_platform_never_got_is_sent_once(rt, clock, console):
    clock.set(MONDAY_0930)
    rt.tick()
    d = only(rt)
    with transaction(rt.factory) as session:  # claimed, then the process died before calling the platform
        session.execute(
            update(Delivery)
            .where(Delivery.id == d.id)
            .values(state="sending", attempts=1, claimed_by="dead-worker", lease_until=MONDAY_0930)
        )
    clock.advance(timedelta(minutes=10))
    assert rt.sender.recover() == 1
    assert (only(rt).state, only(rt).unsure) == ("pending", True)
    rt.drain()
    assert only(rt).state == "sent"
    assert sum(1 for s in console.messages_to("ana") if s.message.title == "Short lesson") == 1


def test_a_live_lease_is_left_alone(rt, clock):
    clock.set(MONDAY_0930)
    rt.tick()
    d = only(rt)
    with transaction(rt.factory) as session:
        session.execute(
            update(Delivery)
            .where(Delivery.id == d.id)
            .values(state="sending", claimed_by="busy-worker", lease_until=MONDAY_0930 + timedelta(minutes=2))
        )
    assert rt.sender.recover() == 0
    clock.advance(timedelta(minutes=1))
    assert rt.drain().reclaimed == 0
    assert only(rt).state == "sending"
    clock.advance(timedelta(minutes=2))
    assert rt.drain().reclaimed == 1
    assert only(rt).state == "sent"


def test_a_row_in_sending_without_a_lease_counts_as_stuck_after_five_minutes(rt, clock):
    clock.set(MONDAY_0930)
    rt.tick()
    d = only(rt)
    with transaction(rt.factory) as session:
        session.execute(update(Delivery).where(Delivery.id == d.id).values(state="sending"))
    assert rt.sender.recover() == 0
    assert only(rt).state == "sending"
    clock.advance(timedelta(minutes=6))
    assert rt.sender.recover() == 1


def test_multi_part_lesson_resumes_after_a_failure_in_part_two(rt, clock, console):
    clock.set(TUESDAY_0930)
    rt.step()  # monday's short lesson (late) and the long one
    parts = [s.message.title for s in console.messages_to("ana") if s.message.title.startswith("Long lesson")]
    assert parts == ["Long lesson", "Long lesson (2/3)", "Long lesson (3/3)"]  # bo and cy as reference
    console.sent.clear()

    # A new learner: part 1 goes through, part 2 hits an outage.
    with transaction(rt.factory) as session:
        cohort = session.get(Cohort, 1)
        dee = rt.engine.person(session, "console", "console", "dee", tz="Europe/London")
        rt.engine.enroll(session, cohort, dee)
    armed = {"done": False}

    def fail_part_two(sent: Sent) -> None:
        if sent.user_id == "dee" and sent.message.title == "Long lesson" and not armed["done"]:
            armed["done"] = True
            console.fail_next(AdapterError("connection reset", retryable=True))

    console.listeners.append(fail_part_two)
    rt.step()
    [long] = [d for d in deliveries(rt, "lesson", "dee") if d.progress_id == progress(rt, "dee", "long").id]
    assert (long.state, long.attempts, (long.payload or {}).get("parts_sent")) == ("pending", 1, 1)
    clock.advance(timedelta(minutes=1))
    rt.drain()
    titles = [
        s.message.title for s in console.messages_to("dee") if s.message.title.startswith("Long lesson")
    ]
    assert titles == ["Long lesson", "Long lesson (2/3)", "Long lesson (3/3)"]  # part 1 was not sent again
    delivered = [e for e in events(rt, "delivered", "dee") if e.object_id == "program/outbox/step/long"]
    assert len(delivered) == 1


def test_delivered_events_are_recorded_once_per_step(rt, clock):
    clock.set(MONDAY_0930)
    rt.step()
    rt.step()
    clock.set(TUESDAY_0930)
    rt.step()
    rt.step()
    ids = sorted(e.object_id for e in events(rt, "delivered", "ana"))
    assert ids == ["program/outbox/step/long", "program/outbox/step/short"]


def test_a_retried_delivery_holds_that_learners_later_ones_only(rt, clock, console):
    clock.set(TUESDAY_0930)
    rt.tick()  # monday's short lesson (late) and tuesday's long one, for everyone
    console.fail_next(AdapterError("platform unavailable", retryable=True))  # ana's short lesson, sent first
    result = rt.drain()
    assert result.retried == 1
    ana = [s.message.title for s in console.messages_to("ana")]
    assert ana == []  # her long lesson waits behind the short one
    for other in ("bo", "cy"):
        titles = [s.message.title for s in console.messages_to(other)]
        assert titles == ["Short lesson", "Long lesson", "Long lesson (2/3)", "Long lesson (3/3)"]
    clock.advance(timedelta(seconds=30))
    rt.drain()
    ana = [s.message.title for s in console.messages_to("ana")]
    assert ana == ["Short lesson", "Long lesson", "Long lesson (2/3)", "Long lesson (3/3)"]


def test_a_stop_releases_claims_without_counting_an_attempt(rt, clock, console):
    clock.set(MONDAY_0930)
    rt.tick()
    console.listeners.append(lambda sent: rt.sender.request_stop())  # SIGTERM right after the first send
    result = rt.drain()
    assert (result.sent, result.released) == (1, 2)
    rows = deliveries(rt, "lesson")
    assert sorted(d.state for d in rows) == ["pending", "pending", "sent"]
    assert [d.attempts for d in rows if d.state == "pending"] == [0, 0]
    assert all(d.claimed_by is None for d in rows)
    rt.sender._stopping.clear()
    console.listeners.clear()
    assert rt.drain().sent == 2
    assert len(console.sent) == 3


def dee_next_sends_her_long_lesson(rt: Runtime, clock: VirtualClock) -> None:
    """A fourth learner joins on Tuesday: her short lesson is sent, her long one is next in her lane."""
    clock.set(TUESDAY_0930)
    rt.step()  # monday's and tuesday's lessons for the three learners
    with transaction(rt.factory) as session:
        cohort = session.get(Cohort, 1)
        dee = rt.engine.person(session, "console", "console", "dee", tz="Europe/London")
        rt.engine.enroll(session, cohort, dee)
    rt.tick()
    rt.drain(limit=1)  # dee's short lesson (her long one waits in her lane)


def test_a_stop_between_the_parts_of_a_lesson_releases_it_with_the_parts_sent(rt, clock, console):
    dee_next_sends_her_long_lesson(rt, clock)

    def stop_after_part_one(sent: Sent) -> None:
        if sent.user_id == "dee" and sent.message.title == "Long lesson":
            rt.sender.request_stop()  # SIGTERM while the lesson's later parts are still to go

    console.listeners.append(stop_after_part_one)
    result = rt.drain()
    assert (result.sent, result.released) == (0, 1)
    [long] = [d for d in deliveries(rt, "lesson", "dee") if d.progress_id == progress(rt, "dee", "long").id]
    assert (long.state, long.attempts, long.unsure, long.claimed_by) == ("pending", 0, False, None)
    assert (long.payload or {}).get("parts_sent") == 1
    rt.sender._stopping.clear()
    console.listeners.clear()
    assert rt.drain().sent == 1
    titles = [s.message.title for s in console.messages_to("dee") if s.message.title.startswith("Long lesson")]
    assert titles == ["Long lesson", "Long lesson (2/3)", "Long lesson (3/3)"]  # each part once, in order


def test_a_row_skipped_or_deferred_while_preparing_keeps_its_last_error(rt, clock, console):
    clock.set(MONDAY_0930)
    rt.tick()
    console.fail_next(AdapterError("platform unavailable", retryable=True))  # ana's lesson, sent first
    assert rt.drain().retried == 1
    with transaction(rt.factory) as session:  # she opts out meanwhile: her retry is skipped, not sent
        session.execute(update(Delivery).where(Delivery.id == only(rt).id).values(due_at=MONDAY_0930))
        ana = only(rt).person_id
        session.execute(update(Person).where(Person.id == ana).values(opted_out=True))
    result = rt.drain()
    assert (result.skipped, result.sent) == (1, 0)
    ana_row = only(rt)
    assert (ana_row.state, ana_row.attempts, ana_row.claimed_by) == ("skipped", 2, None)
    assert ana_row.last_error == "platform unavailable"
    assert [s.message.title for s in console.messages_to("ana")] == []


class Crash(BaseException):
    """What kill -9 does to a drain, as far as the database can tell: it stops, and nothing is recorded."""


def test_a_crash_between_parts_resumes_with_the_missing_parts_only(rt, clock, console):
    dee_next_sends_her_long_lesson(rt, clock)

    def crash_after_part_one(sent: Sent) -> None:
        if sent.user_id == "dee" and sent.message.title == "Long lesson":
            raise Crash

    console.listeners.append(crash_after_part_one)
    with pytest.raises(Crash):
        rt.drain()
    console.listeners.clear()
    [long] = [d for d in deliveries(rt, "lesson", "dee") if d.progress_id == progress(rt, "dee", "long").id]
    assert long.state == "sending"  # nothing was recorded: the lease is all that is left
    assert rt.drain().sent == 0  # the lease has not expired: no other worker touches it
    clock.advance(timedelta(minutes=3))
    result = rt.drain()
    assert (result.reclaimed, result.sent) == (1, 1)
    titles = [s.message.title for s in console.messages_to("dee") if s.message.title.startswith("Long lesson")]
    assert titles == ["Long lesson", "Long lesson (2/3)", "Long lesson (3/3)"]  # every part exactly once
    parts = [(s.message.part, s.message.parts) for s in console.messages_to("dee") if s.message.kind == "lesson"]
    assert parts[-3:] == [(1, 3), (2, 3), (3, 3)]
    delivered = [e for e in events(rt, "delivered", "dee") if e.object_id == "program/outbox/step/long"]
    assert len(delivered) == 1


def test_a_claim_takes_at_most_its_batch_and_leaves_the_rest_to_other_workers(rt, clock):
    """On PostgreSQL, ``id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`` may be rerun for every row the UPDATE
    scans, and each rerun skips the rows the statement has just updated: the LIMIT slid down the queue and one
    worker's claim took every due row (the three-worker benchmark: one worker sent 1,950 of 2,000)."""
    clock.set(TUESDAY_0930)
    rt.tick()  # six deliveries, one claimable at the head of each of the three learners' lanes
    first = rt.sender._claim(2, probe=False)
    assert len(first) == 2
    second = rt.sender._claim(2, probe=False)
    assert len(second) == 1  # the third lane's head; the other rows wait behind their learners' claimed ones
    with rt.factory() as session:
        sending = session.scalars(select(Delivery.id).where(Delivery.state == "sending")).all()
    assert sorted(sending) == sorted(c.id for c in first + second)
