"""The dispatch loop's send threads: hand a send over, learn which sends finished.

``concurrent.futures`` costs the dispatch loop more than a fast platform call does: a ``Future`` and a work item
per send, and every ``wait(FIRST_COMPLETED)`` installs a waiter on each send in flight and removes it again. The
loop only ever asks "which of my sends have finished?", so here a send is handed to a thread on one queue and
reported back on another: waiting for any send is one queue read, and everything that finished meanwhile is
collected in the same turn. Measured in ``benchmarks/pipeline.py`` (``docs/performance.md``).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class SendPool(Generic[T]):
    """Up to ``width`` threads, started as sends need them, each running ``run(item)`` for the items handed over.

    Used from one thread (the dispatch loop), except :meth:`wake`, which any thread may call. An item is reported
    finished whatever its run does; a run that raises (the sender's own send catches everything) is logged and the
    thread goes on.
    """

    def __init__(self, width: int, run: Callable[[T], None], name: str = "send") -> None:
        self._width = max(1, width)
        self._run = run
        self._name = name
        self._work: queue.SimpleQueue[T | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[T | None] = queue.SimpleQueue()  # None: a wake-up, not a send
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        #: Items handed over and not yet collected by :meth:`finished`.
        self.in_flight = 0

    def submit(self, item: T) -> None:
        self.in_flight += 1
        self._work.put(item)
        if len(self._threads) < min(self._width, self.in_flight):
            thread = threading.Thread(target=self._loop, name=f"{self._name}-{len(self._threads)}")
            self._threads.append(thread)
            thread.start()

    def wake(self) -> None:
        """End a :meth:`finished` wait early (another thread has news for the loop)."""
        self._done.put(None)

    def finished(self, timeout: float) -> list[T]:
        """The items whose run ended: waits up to ``timeout`` seconds for the first (or a :meth:`wake`), then takes
        every other one already finished without waiting."""
        out: list[T] = []
        try:
            item = self._done.get(timeout=timeout) if timeout > 0 else self._done.get_nowait()
            while True:
                if item is not None:
                    out.append(item)
                item = self._done.get_nowait()
        except queue.Empty:
            pass
        self.in_flight -= len(out)
        return out

    def close(self) -> None:
        """Start nothing more: items not yet started are dropped (the caller still counts them in flight); a run
        under way finishes on its thread, which then ends."""
        self._closed.set()
        for _ in self._threads:
            self._work.put(None)

    def _loop(self) -> None:
        while True:
            item = self._work.get()
            if item is None or self._closed.is_set():
                return
            try:
                self._run(item)
            except Exception:
                log.exception("a send raised on the send thread")
            finally:
                self._done.put(item)
