"""The composition root: the only module that knows every part.

It builds the database engine, the program library, the core engine, the dispatcher, the sender and the adapters
from :class:`~bot.config.Settings`, and wires APScheduler as the clock: one interval job plans (the tick), another
drains the outbox, so a backlog never delays planning; cron jobs plan digests and refresh sessions. No job is ever
created per learner. Planning and cron jobs run on one worker at a time (a PostgreSQL advisory lock); the drain runs
on every worker (claims with leases keep each delivery on one of them).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine as DbEngine
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot import metrics
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.dispatcher import Dispatcher
from bot.errors import AdapterError, BlendwiseError, ConfigError
from bot.journeys.compose import public_session_description
from bot.journeys.engine import Engine
from bot.journeys.library import Library
from bot.nudges.digests import digest_purposes, plan_cohort_recaps, plan_digests
from bot.nudges.outbox import DrainResult, Sender
from bot.nudges.tick import TickResult, tick
from bot.platforms import PlatformParts, registered
from bot.ports import Adapter, LiveSession, Profile
from bot.registry import FeatureUnavailable, Registry, load_features
from bot.storage.db import make_engine, session_factory, transaction, upgrade
from bot.storage.locks import exclusive, single_worker
from bot.storage.models import Cohort, LiveSessionRow
from bot.web import WebApp, WebServer

log = logging.getLogger(__name__)

#: What ``blendwise run --role`` accepts.
ROLES = ("all", "web", "worker")

#: The HTTP tier's port when neither ``web.port`` nor a configured platform's section names one.
DEFAULT_PORT = 3000



def _platform_packages() -> tuple[str, ...]:
    """The console's module and the ``settings`` module of every package under ``bot/adapters/``.

    A platform is one folder: dropping a package with a ``settings`` module into ``bot/adapters/`` registers it, so
    adding a platform changes no line of the core.
    """
    import pkgutil

    import bot.adapters

    found = []
    for package in pkgutil.iter_modules(bot.adapters.__path__):
        if not package.ispkg:
            continue
        inside = pkgutil.iter_modules([f"{bot.adapters.__path__[0]}/{package.name}"])
        if any(module.name == "settings" for module in inside):
            found.append(f"bot.adapters.{package.name}.settings")
    return ("bot.adapters.console", *sorted(found))


#: The platform packages: each module registers its :class:`~bot.platforms.PlatformSpec` (settings section,
#: variables, factory) when imported, without importing its SDK. Found on disk, so a new platform is a new folder.
PLATFORM_PACKAGES = _platform_packages()


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
    #: Extra set-wise planners run after each tick, in their own transaction: ``planner(session, engine, now)``.
    planners: list[Any] = field(default_factory=list)
    #: Extra interval jobs for the scheduler: ``(id, seconds, callable)`` (e.g. LRS forwarding).
    jobs: list[tuple[str, float, Any]] = field(default_factory=list)
    #: What the optional features registered (services, demo steps, features left out for want of an extra).
    registry: Registry | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    #: The HTTP tier, once :meth:`start_web` ran.
    web: WebServer | None = None
    role: str = "all"
    _workspaces: dict[str, str | None] = field(default_factory=dict)

    def feature(self, name: str) -> Any:
        """The service an optional feature provided (``live``...), or :class:`~bot.registry.MissingExtra` saying
        which extra enables it."""
        if self.registry is None:
            raise FeatureUnavailable(f"the {name} feature is not part of this installation")
        return self.registry.feature(name)

    def require(self, name: str) -> None:
        """Raise :class:`~bot.registry.MissingExtra` if feature ``name`` was left out for want of its extra."""
        if self.registry is not None:
            self.registry.require(name)

    # ------------------------------------------------------------------ one beat of the clock
    def tick(self) -> TickResult:
        with transaction(self.factory) as session:
            now = self.clock.now()
            result = tick(session, now, auto_pause_after=self.settings.nudges.auto_pause_after)
            # In the same transaction: a session the tick made n/a releases what waits on it, or nothing does.
            self.engine.release_not_applicable(session, result.not_applicable, now)
        for planner in self.planners:
            with transaction(self.factory) as session:
                planner(session, self.engine, self.clock.now())
        return result

    def drain(self, limit: int | None = None) -> DrainResult:
        return self.sender.drain(limit)

    def plan_digests(self) -> int:
        """The hourly job: manager digests and weekly cohort recaps, each due at its owner's local time."""
        with transaction(self.factory) as session:
            planned = plan_digests(session, self.engine, self.clock.now())
            return planned + plan_cohort_recaps(session, self.engine, self.clock.now())

    def step(self) -> tuple[TickResult, DrainResult]:
        """Tick, then drain: what the interval job does."""
        self.mirror_sessions()
        self.sync_session_changes()
        return self.tick(), self.drain()

    # ------------------------------------------------------------------ platform-native live sessions
    def _live(self, live: LiveSessionRow, cohort: Cohort) -> LiveSession:
        program = self.library.program(cohort.program_id) if cohort.program_id in self.library else None
        # Rendered like the invite: a native event must never show ``{{ session.start_local }}``.
        description = public_session_description(program, cohort, live) if program else ""
        return LiveSession(
            key=f"{cohort.id}:{live.step_id}",
            workspace=cohort.workspace,
            title=live.title,
            description=str(description)[:900],
            start=live.start_at,
            end=live.end_at,
            join_url=live.join_url,
            # No channel: the platform's adapter picks its own (Discord's ``voice_channel``); the core knows none.
            channel=None,
            cancelled=live.cancelled_at is not None,
            # The step's minimum, so voice and meeting-event attendance hold people to the rule an imported report
            # is held to; None lets the adapter apply its platform default.
            min_minutes=program.attendance_minutes(live.step_id) if program else None,
        )

    def mirror_sessions(self) -> int:
        """Give each upcoming session its platform-native twin (a Discord Scheduled Event) once.

        Cheap on every tick: the query only finds sessions never offered to their adapter. The platform call
        happens outside any transaction; adapters with no native feature answer None, recorded as ``-``.
        """
        now = self.clock.now()
        with self.factory() as session:
            rows = session.execute(
                select(LiveSessionRow, Cohort)
                .join(Cohort, Cohort.id == LiveSessionRow.cohort_id)
                .where(
                    LiveSessionRow.platform_ref.is_(None),
                    LiveSessionRow.end_at > now,
                    LiveSessionRow.cancelled_at.is_(None),
                )
            ).all()
            todo = [(live.id, self._live(live, cohort), cohort.platform) for live, cohort in rows]
        done = 0
        for live_id, info, platform in todo:
            adapter = self.adapters.get(platform)
            if adapter is None:
                continue
            refused: str | None = None
            try:
                ref = adapter.on_session_scheduled(info)
            except AdapterError as exc:
                if exc.retryable:  # a 5xx, a 429, not connected yet: the next tick tries again
                    log.warning("could not mirror session %s on %s: %s", info.key, platform, exc)
                    continue
                # The platform said no for good (e.g. a start it takes for the past): record it, never ask again.
                log.warning("%s refused to mirror session %s, not retried: %s", platform, info.key, exc)
                ref, refused = None, str(exc)[:300]
            except BlendwiseError as exc:
                log.warning("could not mirror session %s on %s: %s", info.key, platform, exc)
                continue
            with transaction(self.factory) as session:
                row = session.get(LiveSessionRow, live_id)
                if row is not None:
                    row.platform_ref = ref or "-"
                    row.mirrored_sequence = row.sequence
                    row.mirror_refused = refused
            done += 1
        return done

    def sync_session_changes(self) -> int:
        """Bring native twins up to date after a move or a cancellation (``sequence`` ahead of
        ``mirrored_sequence``). The CLI changes sessions without adapters, so the runtime does this on its next
        tick; a failed platform call is retried on the next one."""
        with self.factory() as session:
            rows = session.execute(
                select(LiveSessionRow, Cohort)
                .join(Cohort, Cohort.id == LiveSessionRow.cohort_id)
                .where(
                    LiveSessionRow.mirrored_sequence < LiveSessionRow.sequence,
                    LiveSessionRow.platform_ref.is_not(None),
                    LiveSessionRow.platform_ref != "-",
                )
            ).all()
            todo = [
                (live.id, live.sequence, live.platform_ref or "", self._live(live, cohort), cohort.platform)
                for live, cohort in rows
            ]
        done = 0
        for live_id, sequence, ref, info, platform in todo:
            adapter = self.adapters.get(platform)
            if adapter is None:
                continue
            try:
                adapter.on_session_changed(info, ref)
            except BlendwiseError as exc:
                log.warning("could not update the mirror of session %s on %s: %s", info.key, platform, exc)
                continue
            with transaction(self.factory) as session:
                session.execute(
                    update(LiveSessionRow)
                    .where(LiveSessionRow.id == live_id, LiveSessionRow.mirrored_sequence < sequence)
                    .values(mirrored_sequence=sequence)
                )
            done += 1
        return done

    def refresh_sessions(self) -> None:
        """Hourly: let adapters re-sync native RSVPs and presence tracking for sessions in the coming week."""
        now = self.clock.now()
        with self.factory() as session:
            rows = session.execute(
                select(LiveSessionRow, Cohort)
                .join(Cohort, Cohort.id == LiveSessionRow.cohort_id)
                .where(
                    LiveSessionRow.platform_ref.is_not(None),
                    LiveSessionRow.platform_ref != "-",
                    LiveSessionRow.end_at > now,
                    LiveSessionRow.start_at < now + timedelta(days=7),
                    # A cancelled session has nothing left to sync: re-tracking it would count presence again.
                    LiveSessionRow.cancelled_at.is_(None),
                )
            ).all()
            todo = [(self._live(live, cohort), live.platform_ref or "", cohort.platform) for live, cohort in rows]
        for info, ref, platform in todo:
            adapter = self.adapters.get(platform)
            if adapter is not None:
                try:
                    adapter.refresh_session(info, ref)
                except BlendwiseError as exc:
                    log.warning("could not refresh session %s on %s: %s", info.key, platform, exc)

    # ------------------------------------------------------------------ workspaces
    def default_workspace(self, platform: str) -> str | None:
        """The workspace meant on ``platform`` when a roster row or a new cohort names none (see
        :meth:`bot.ports.Adapter.default_workspace`), or ``None`` when the platform serves several.

        One-shot commands build the runtime without adapters; the one adapter asked is then constructed here (not
        started: Slack answers ``auth.test`` over HTTP, Discord needs only its configured guilds).

        Raises:
            ConfigError: ``platform`` is not configured, or its settings are incomplete.
            AdapterError: the platform could not be asked.
        """
        if platform not in self.settings.platforms:
            configured = ", ".join(self.settings.platforms)
            raise ConfigError("platforms", f"'{platform}' is not configured (configured: {configured})")
        if platform not in self._workspaces:
            adapter = self.adapters.get(platform)
            if adapter is None:
                only = self.settings.model_copy(update={"platforms": [platform]})
                adapter = build_adapters(only, self.db, self.clock)[platform]
            self._workspaces[platform] = adapter.default_workspace()
        return self._workspaces[platform]

    # ------------------------------------------------------------------ running for real
    def start_adapters(self) -> None:
        for name, adapter in self.adapters.items():
            log.info("starting %s adapter", name)
            adapter.start(self.dispatcher)
        self.refresh_sessions()

    def stop(self) -> None:
        self._stop.set()

    def plan(self) -> TickResult:
        """The planning job: mirror new sessions natively, then tick."""
        self.mirror_sessions()
        return self.tick()

    def start_web(self) -> WebServer:
        """Serve ``/healthz``, ``/metrics`` and the routes the adapters contribute (``/slack/events``) with uvicorn.

        Adapters that contribute routes stop serving HTTP themselves; call this before :meth:`start_adapters`.
        """
        app = WebApp(health=lambda: {"role": self.role})
        for adapter in self.adapters.values():
            routes = getattr(adapter, "web_routes", None)
            if routes is None:
                continue
            for path, handler in routes().items():
                app.add(path, handler)
            adapter.shared_web = True  # type: ignore[attr-defined]
        metrics.watch_outbox(self.db)
        web = self.settings.web
        # Earlier versions served HTTP on the platform's own port (``slack.port``): a configured platform whose
        # section has a ``port`` still sets the default.
        sections = [getattr(self.settings, name, None) for name in self.settings.platforms]
        ports = [p for p in (getattr(section, "port", None) for section in sections) if isinstance(p, int)]
        port = web.port if web.port is not None else next(iter(ports), DEFAULT_PORT)
        self.web = WebServer(web.host, port, app)
        self.web.start()
        log.info("HTTP tier listening on %s (/healthz, /metrics%s)", self.web.url,
                 "".join(f", {p}" for p in sorted(app.routes)))
        return self.web

    def run_forever(self, role: str = "all") -> None:
        """Start adapters and the scheduler; block until SIGINT/SIGTERM, then stop gracefully.

        ``role``: ``all`` (the single-process default) serves HTTP and runs the jobs; ``web`` serves the HTTP tier
        and the adapters' inbound handling and schedules no jobs, so web processes scale with request load;
        ``worker`` runs the jobs (tick, drain, digests...) and outbound sends and opens no port.

        A stop stops claiming, gives in-flight sends ``sender.grace_seconds`` to finish and releases every claim
        this worker still holds without counting an attempt, so restarts never burn retries.
        """
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        self.role = role
        # Handlers first: a SIGTERM that arrives while the HTTP tier or the adapters start must still stop us
        # gracefully (releasing claims), not kill the process.
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread (tests)
                signal.signal(sig, lambda *_: self._stop.set())
        if role == "worker":
            for adapter in self.adapters.values():
                if hasattr(adapter, "shared_web"):
                    adapter.shared_web = True  # outbound only: nothing listens in a worker
        else:
            self.start_web()
        worker_lock = single_worker(self.db) if role != "web" else None
        # The drain runs every second: APScheduler's per-run lines (and "skipped: already running" while a long
        # drain works through a backlog, which is expected) would drown the log.
        logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
        logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
        sender = self.settings.sender
        self.start_adapters()
        scheduler = self._scheduler()
        if role != "web":  # a web process schedules nothing: workers own the jobs
            scheduler.start()
        log.info(
            "Blendwise is running as %s (tick every %ss, drain every %ss, worker %s)",
            role,
            sender.tick_seconds,
            sender.drain_seconds,
            self.sender.worker,
        )
        try:
            self._stop.wait()
        finally:
            self._shut_down(scheduler, worker_lock)

    def _scheduler(self) -> Any:
        """The clock: tick and drain are separate jobs on the scheduler's thread pool, so a long drain never
        delays planning; cron-like jobs run on one worker at a time."""
        from apscheduler.schedulers.background import BackgroundScheduler

        sender = self.settings.sender
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(
            self._safe(self._exclusive("tick", self.plan)),
            "interval",
            seconds=sender.tick_seconds,
            id="tick",
            max_instances=1,
            coalesce=True,
        )
        scheduler.add_job(
            self._safe(self.drain), "interval", seconds=sender.drain_seconds, id="drain", max_instances=1, coalesce=True
        )
        scheduler.add_job(
            self._safe(self._exclusive("digests", self.plan_digests)),
            "cron",
            minute=0,
            id="digests",
            max_instances=1,
            coalesce=True,
        )
        scheduler.add_job(
            self._safe(self._exclusive("sessions", self.refresh_sessions)),
            "cron",
            minute=30,
            id="sessions",
            max_instances=1,
            coalesce=True,
        )
        for job_id, seconds, job in self.jobs:
            scheduler.add_job(
                self._safe(self._exclusive(job_id, job)),
                "interval",
                seconds=seconds,
                id=job_id,
                max_instances=1,
                coalesce=True,
            )
        return scheduler

    def _shut_down(self, scheduler: Any, worker_lock: Any) -> None:
        """Stop claiming, let in-flight sends finish, release claims, then stop the HTTP tier and adapters."""
        self.sender.request_stop()
        if scheduler.running:
            scheduler.shutdown(wait=True)
        released = self.sender.release()
        if released:
            log.info("released %d claimed deliveries for another worker", released)
        if self.web is not None:
            self.web.stop()
        for adapter in self.adapters.values():
            adapter.stop()
        if worker_lock is not None:
            worker_lock.close()
        log.info("Blendwise stopped")

    def _exclusive(self, name: str, job: Any) -> Any:
        """Run ``job`` only if no other worker is running it (PostgreSQL advisory lock; always on SQLite)."""

        def run() -> None:
            with exclusive(self.db, f"blendwise:{name}") as mine:
                if mine:
                    job()

        run.__name__ = getattr(job, "__name__", name)
        return run

    @staticmethod
    def _safe(job: Any) -> Any:
        def run() -> None:
            try:
                job()
            except Exception:
                log.exception("scheduled job %s failed; it will run again at its next time", job.__name__)

        run.__name__ = getattr(job, "__name__", "job")
        return run


#: Python's default collector thresholds, and the ones a runtime uses instead (see :func:`tune_gc`).
DEFAULT_GC_THRESHOLDS = (700, 10, 10)
GC_THRESHOLDS = (10_000, 50, 100)


def tune_gc() -> None:
    """Collect cyclic garbage less often than Python's default, unless the process set its own thresholds.

    A drain allocates several short-lived objects per message (ORM rows, template contexts, messages, futures):
    with the default gen-0 threshold of 700 a collection runs every few deliveries, and every tenth of those
    scans the older generations, which hold the whole loaded program, SQLAlchemy's and Jinja's caches. In a null
    drain that was about a fifth of the CPU time. Reference counting still frees almost everything at once;
    only cycles wait a little longer.
    """
    if gc.get_threshold() == DEFAULT_GC_THRESHOLDS:
        gc.set_threshold(*GC_THRESHOLDS)


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
    tune_gc()
    db = make_engine(settings.database_url)
    if migrate:
        upgrade(db)
    factory = session_factory(db)
    library = library or Library.from_dir(settings.content_dir)
    adapters = dict(adapters) if adapters is not None else build_adapters(settings, db, clock)

    def profile(platform: str, workspace: str, user_id: str) -> Profile | None:
        adapter = adapters.get(platform)
        return adapter.profile(workspace, user_id) if adapter is not None else None

    engine = Engine(library, settings, clock, profiles=profile)
    dispatcher = Dispatcher(factory, engine, clock)
    sender = Sender(
        factory,
        engine,
        adapters,
        clock,
        max_attempts=settings.sender.max_attempts,
        batch=settings.sender.batch,
        lease_seconds=settings.sender.lease_seconds,
        concurrency=settings.sender.concurrency,
        grace_seconds=settings.sender.grace_seconds,
    )
    for purpose in digest_purposes(engine):
        sender.purposes.register(purpose)
    runtime = Runtime(settings, clock, db, factory, library, engine, dispatcher, sender, dict(adapters))
    # Optional features register their buttons, commands, purposes, planners and jobs; one whose extra is missing
    # is left out with one log line, and a name registered twice stops the start-up naming both registrants.
    runtime.registry = Registry(runtime)
    load_features(runtime.registry)
    return runtime


def build_adapters(settings: Settings, db: DbEngine, clock: Clock | None = None) -> dict[str, Adapter]:
    """Construct the configured platform adapters through their registered factories, which import the platform
    SDKs lazily (nowhere else in the core imports one)."""
    platforms = registered()
    parts = PlatformParts(settings, db, clock)
    return {
        name: platforms[name].factory(getattr(settings, name, None), parts)
        for name in settings.platforms
    }
