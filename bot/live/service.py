"""The live-engagement service: the collaborators the feature needs, gathered once per runtime."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.journeys.engine import Engine
from bot.live.llm import LLMClient
from bot.live.polls import Polls
from bot.live.recaps import Recaps
from bot.live.search import Search
from bot.ports import Adapter

log = logging.getLogger(__name__)

Job = Callable[[], None]


def background(max_workers: int = 2) -> Callable[[Job], None]:
    """Run jobs on a small worker pool (LLM calls take seconds to minutes; inbound handlers must not wait)."""
    pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="blendwise-live")

    def submit(job: Job) -> None:
        def run() -> None:
            try:
                job()
            except Exception:
                log.exception("background job failed")

        pool.submit(run)

    return submit


def inline(job: Job) -> None:
    job()


class Live:
    """Polls, recaps, catch-ups and search, sharing the runtime's database, engine, adapters and clock.

    Args:
        run_later: how work that must wait for a commit is run (LLM drafting, editing a poll message).
            A worker pool in production; inline under a virtual clock, so the demo and tests stay deterministic.
        llm: the LLM client, or ``None`` for the offline fallbacks.
    """

    def __init__(
        self,
        *,
        factory: sessionmaker[Session],
        engine: Engine,
        adapters: Mapping[str, Adapter],
        clock: Clock,
        llm: LLMClient | None,
        run_later: Callable[[Job], None] = inline,
    ) -> None:
        self.factory = factory
        self.engine = engine
        self.adapters = adapters
        self.clock = clock
        self.llm = llm
        self.run_later = run_later
        self.polls = Polls(self)
        self.recaps = Recaps(self)
        self.search = Search(self)

    def after_commit(self, session: Session, job: Job) -> None:
        """Run ``job`` once ``session``'s transaction has committed (never if it rolls back)."""
        event.listen(session, "after_commit", lambda _s: self.run_later(job), once=True)
