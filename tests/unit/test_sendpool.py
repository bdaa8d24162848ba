"""The dispatch loop's send threads: every item handed over is reported finished once, whatever it does."""

from __future__ import annotations

import threading
import time

from bot.nudges.sendpool import SendPool


def test_every_item_is_reported_once_and_runs_overlap_up_to_the_width():
    running, peak, lock = [0], [0], threading.Lock()

    def run(item: int) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1

    pool: SendPool[int] = SendPool(4, run)
    for i in range(12):
        pool.submit(i)
    assert pool.in_flight == 12
    done: list[int] = []
    while len(done) < 12:
        done += pool.finished(5.0)
    pool.close()
    assert sorted(done) == list(range(12))
    assert pool.in_flight == 0
    assert peak[0] == 4  # four threads, never more


def test_a_wake_ends_a_wait_without_reporting_anything():
    pool: SendPool[int] = SendPool(2, lambda item: None)
    threading.Timer(0.05, pool.wake).start()
    started = time.monotonic()
    assert pool.finished(5.0) == []
    assert time.monotonic() - started < 4.0
    pool.close()


def test_an_item_whose_run_raises_is_reported_finished_and_the_thread_goes_on(caplog):
    def run(item: int) -> None:
        if item == 7:
            raise RuntimeError("boom")

    pool: SendPool[int] = SendPool(1, run)
    pool.submit(7)
    assert pool.finished(5.0) == [7]
    pool.submit(8)  # the one thread is still there to run it
    assert pool.finished(5.0) == [8]
    pool.close()
    assert "a send raised" in caplog.text


def test_after_close_nothing_more_starts():
    gate = threading.Event()
    ran: list[int] = []

    def run(item: int) -> None:
        gate.wait(5.0)
        ran.append(item)

    pool: SendPool[int] = SendPool(1, run)
    pool.submit(1)  # takes the only thread and waits at the gate
    pool.submit(2)  # queued behind it
    time.sleep(0.05)
    pool.close()
    gate.set()
    time.sleep(0.1)
    assert ran == [1]  # the run under way finished; the queued one never started
