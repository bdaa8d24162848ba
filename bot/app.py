"""The composition root: the only module that knows every part.

It builds the database engine, the program library, the core engine, the dispatcher, the sender and the adapters
from :class:`~bot.config.Settings`, and wires APScheduler as the clock: one interval job runs the tick and drains
the outbox, one cron job plans manager digests. No job is ever created per learner.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine as DbEngine
from sqlalchemy.orm import Session, sessionmaker

from bot.adapters.base import Adapter
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.dispatcher import Dispatcher
from bot.journeys.engine import Engine
from bot.journeys.library import Library
from bot.nudges.digests import plan_digests, render_digest
from bot.nudges.outbox import DrainResult, Sender
from bot.nudges.tick import TickResult, tick
from bot.storage.db import make_engine, session_factory, transaction, upgrade

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    db: DbEngine
    factory: sessionmaker[Session]
    library: Library
    engine: Engine
    dispatcher: Dispatcher
    sender: Sender
    adapters: dict[str, Adapter] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    # ------------------------------------------------------------------ one beat of the clock
    def tick(self) -> TickResult:
        with transaction(self.factory) as session:
            return tick(session, self.clock.now(), auto_pause_after=self.settings.nudges.auto_pause_after)

    def drain(self, limit: int | None = None) -> DrainResult:
        return self.sender.drain(limit)

    def plan_digests(self) -> int:
        with transaction(self.factory) as session:
            return plan_digests(session, self.engine, self.clock.now())

    def step(self) -> tuple[TickResult, DrainResult]:
        """Tick, then drain: what the interval job does."""
        return self.tick(), self.drain()

    # ------------------------------------------------------------------ running for real
    def start_adapters(self) -> None:
        for name, adapter in self.adapters.items():
            log.info("starting %s adapter", name)
            adapter.start(self.dispatcher)

    def stop(self) -> None:
        self._stop.set()

    def run_forever(self) -> None:
        """Start adapters and the scheduler; block until SIGINT/SIGTERM."""
        from apscheduler.schedulers.background import BackgroundScheduler

        self.start_adapters()
        self.sender.recover()
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(
            self._safe(self.step),
            "interval",
            seconds=self.settings.sender.tick_seconds,
            id="tick",
            max_instances=1,
            coalesce=True,
        )
        scheduler.add_job(self._safe(self.plan_digests), "cron", minute=0, id="digests", max_instances=1, coalesce=True)
        scheduler.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                signal.signal(sig, lambda *_: self._stop.set())
            except ValueError:  # not the main thread (tests)
                pass
        log.info("Blendwise is running (tick every %ss)", self.settings.sender.tick_seconds)
        try:
            self._stop.wait()
        finally:
            scheduler.shutdown(wait=False)
            for adapter in self.adapters.values():
                adapter.stop()
            log.info("Blendwise stopped")

    @staticmethod
    def _safe(job: Any) -> Any:
        def run() -> None:
            try:
                job()
            except Exception:
                log.exception("scheduled job %s failed; it will run again at its next time", job.__name__)

        run.__name__ = getattr(job, "__name__", "job")
        return run


def build(
    settings: Settings,
    *,
    clock: Clock | None = None,
    adapters: Mapping[str, Adapter] | None = None,
    library: Library | None = None,
    migrate: bool = True,
) -> Runtime:
    """Assemble a runtime. Collaborators can be injected (tests, the demo); defaults come from settings."""
    clock = clock or SystemClock()
    db = make_engine(settings.database_url)
    if migrate:
        upgrade(db)
    factory = session_factory(db)
    library = library or Library.from_dir(settings.content_dir)
    engine = Engine(library, settings, clock)
    dispatcher = Dispatcher(factory, engine, clock)
    adapters = dict(adapters) if adapters is not None else build_adapters(settings, db)
    sender = Sender(
        factory,
        engine,
        adapters,
        clock,
        max_attempts=settings.sender.max_attempts,
        batch=settings.sender.batch,
        composers={"digest": render_digest(engine)},
    )
    runtime = Runtime(settings, clock, db, factory, library, engine, dispatcher, sender, dict(adapters))
    _install_extensions(runtime)
    return runtime


def _install_extensions(runtime: Runtime) -> None:
    """Optional features register their buttons, commands and renderers here (live polls, recaps, search...)."""
    try:
        from bot import extensions
    except ImportError:
        return
    extensions.install(runtime)


def build_adapters(settings: Settings, db: DbEngine) -> dict[str, Adapter]:
    """Construct the configured platform adapters. Platform SDKs are imported here, lazily, and nowhere else in
    the core."""
    adapters: dict[str, Adapter] = {}
    for platform in settings.platforms:
        if platform == "console":
            from bot.adapters.console import ConsoleAdapter

            adapters["console"] = ConsoleAdapter()
        elif platform == "slack":
            from bot.adapters.slack import build_slack_adapter

            adapters["slack"] = build_slack_adapter(settings, db)
        elif platform == "discord":
            from bot.adapters.discord import build_discord_adapter

            adapters["discord"] = build_discord_adapter(settings)
    return adapters
