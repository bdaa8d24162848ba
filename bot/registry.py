"""The typed feature registry: how optional features plug into the core.

A feature is a package with ``setup(registry)`` (and, when it adds command-line commands, ``setup_cli(cli)``). It
declares what it needs at module level:

* ``EXTRA``: the ``pip install 'blendwise[<extra>]'`` that provides its optional dependencies;
* ``REQUIRES``: the top-level modules of those dependencies.

:func:`load_features` imports each feature and checks ``REQUIRES`` first. A feature whose dependency is missing is
left out, with one log line naming the extra that enables it, and the commands that need it answer with that same
line (:class:`MissingExtra`, exit code 2). Everything a feature registers is staged and applied only once its
``setup`` returned, so a feature that fails half-way leaves nothing behind.

Names are registered once: a second button, ``/learn`` subcommand, purpose, planner, job or CLI command of the same
name raises :class:`~bot.errors.DuplicateRegistration` at start-up, naming both registrants (as discord.py's
``GroupMixin.add_command`` does), instead of silently replacing the first.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from bot.errors import BlendwiseError, DuplicateRegistration

if TYPE_CHECKING:
    import typer

    from bot.app import Runtime
    from bot.commands import Sub
    from bot.dispatcher import AttachmentMaker, Handler
    from bot.journeys.engine import Engine
    from bot.nudges.purposes import Purpose, Renderer

log = logging.getLogger(__name__)

#: The optional features shipped with Blendwise, in the order they are set up.
FEATURES: tuple[str, ...] = ("bot.live", "bot.records", "bot.reinforcement", "bot.reporting")

#: ``planner(session, engine, now)``: extra set-wise planning run after each tick, in its own transaction.
Planner = Callable[[Session, "Engine", datetime], Any]
#: A scenario step for ``blendwise demo``: ``hook(simulation, cohort_name, lead_user_id)``.
DemoHook = Callable[[Any, str, str], None]


class MissingExtra(BlendwiseError):
    """A feature's optional dependency is not installed. The message says which extra enables it."""

    exit_code = 2

    def __init__(self, feature: str, extra: str, module: str) -> None:
        self.feature = feature
        self.extra = extra
        self.module = module
        super().__init__(
            f"the {feature} feature is off because '{module}' is not installed: "
            f"pip install 'blendwise[{extra}]' enables it"
        )


class FeatureUnavailable(BlendwiseError):
    """A feature that is not part of this installation was asked for."""

    exit_code = 2


def feature_name(module: ModuleType | str) -> str:
    """``bot.live`` -> ``live``: how a feature is named in messages and in :meth:`Runtime.feature`."""
    name = module if isinstance(module, str) else module.__name__
    return name.rsplit(".", 1)[-1]


def missing_requirement(module: ModuleType) -> MissingExtra | None:
    """Look for each of the feature's ``REQUIRES``; the first not installed gives the :class:`MissingExtra`.

    A requirement is found, not imported: a feature imports it where it is used, so a start pays for matplotlib
    only when a chart is drawn. An installed module that then fails to import fails where it is used (a chart is
    logged and left out).
    """
    extra = getattr(module, "EXTRA", None)
    for requirement in getattr(module, "REQUIRES", ()):
        try:
            found = importlib.util.find_spec(requirement) is not None
        except (ImportError, ValueError):  # a dotted name whose parent is missing; a module half-imported
            found = False
        if not found:
            return MissingExtra(feature_name(module), extra or feature_name(module), requirement)
    return None


@dataclass
class Registry:
    """What features register on, bound to one runtime.

    Attributes:
        runtime: the runtime being built; features read its settings, engine, database and adapters.
        owner: the registrant named in duplicate errors (the feature's module while its ``setup`` runs).
    """

    runtime: Runtime
    owner: str = "bot.app"
    job_owners: dict[str, str] = field(default_factory=dict)
    demo_hooks: list[tuple[str, DemoHook]] = field(default_factory=list)
    services: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, MissingExtra] = field(default_factory=dict)
    planner_owners: dict[str, str] = field(default_factory=dict)
    service_owners: dict[str, str] = field(default_factory=dict)
    _staged: list[Callable[[], object]] | None = None

    # ------------------------------------------------------------------ what a feature registers
    def add_button(self, action: str, handler: Handler) -> None:
        """Handle presses of buttons whose action is ``action``."""
        owner = self.owner
        self._do(lambda: self.runtime.dispatcher.register_button(action, handler, owner=owner))

    def add_attachment(self, kind: str, maker: AttachmentMaker) -> None:
        """Make again, from the database, the files whose source is ``<kind>:...`` (a platform that links to files
        serves them with it, see :meth:`bot.ports.InboundHandler.attachment`)."""
        owner = self.owner
        self._do(lambda: self.runtime.dispatcher.register_attachment(kind, maker, owner=owner))

    def add_command(self, name: str, sub: Sub) -> None:
        """Add the ``/learn <name>`` subcommand: on every platform, and in ``/learn help``."""
        owner = self.owner
        self._do(lambda: self.runtime.dispatcher.commands.register(name, sub, owner=owner))

    def add_purpose(self, purpose: Purpose) -> None:
        """Teach the sender a purpose (key scheme, priority, window policy, renderer): see :mod:`bot.nudges.purposes`."""
        owner = self.owner
        self._do(lambda: self.runtime.sender.purposes.register(purpose, owner=owner))

    def wrap_purpose(self, name: str, wrapper: Callable[[Renderer], Renderer]) -> None:
        """Decorate a registered purpose's renderer (the digest gains a chart when reporting is installed)."""
        self._do(lambda: self.runtime.sender.purposes.wrap(name, wrapper))

    def add_planner(self, planner: Planner, name: str | None = None) -> None:
        """Run ``planner`` after each tick (set-wise, in its own transaction)."""
        key = name or f"{getattr(planner, '__module__', '?')}.{getattr(planner, '__qualname__', repr(planner))}"
        owner = self.owner

        def add() -> None:
            if key in self.planner_owners:
                raise DuplicateRegistration("planner", key, self.planner_owners[key], owner)
            self.runtime.planners.append(planner)
            self.planner_owners[key] = owner

        self._do(add)

    def add_job(self, job_id: str, seconds: float, job: Callable[[], Any]) -> None:
        """Run ``job`` every ``seconds`` in the scheduler (work that talks to the network, like LRS forwarding)."""
        owner = self.owner

        def add() -> None:
            if job_id in self.job_owners:
                raise DuplicateRegistration("job", job_id, self.job_owners[job_id], owner)
            self.runtime.jobs.append((job_id, seconds, job))
            self.job_owners[job_id] = owner

        self._do(add)

    def add_demo(self, hook: DemoHook) -> None:
        """Add a step to ``blendwise demo``'s scenario (after enrolment, before the clock runs)."""
        owner = self.owner
        self._do(lambda: self.demo_hooks.append((owner, hook)))

    def provide(self, name: str, service: Any) -> None:
        """Make the feature's service object reachable as ``runtime.feature(name)`` (the CLI, the demo, tests)."""
        owner = self.owner

        def add() -> None:
            if name in self.services:
                raise DuplicateRegistration("service", name, self.service_owners.get(name, "?"), owner)
            self.services[name] = service
            self.service_owners[name] = owner

        self._do(add)

    # ------------------------------------------------------------------ lookups
    def feature(self, name: str) -> Any:
        """The service a feature provided, or the one line saying which extra enables it."""
        if name in self.services:
            return self.services[name]
        if name in self.missing:
            raise self.missing[name]
        raise FeatureUnavailable(f"the {name} feature is not part of this installation")

    def require(self, name: str) -> None:
        """Raise the feature's :class:`MissingExtra` if it was left out for want of its extra."""
        if name in self.missing:
            raise self.missing[name]

    # ------------------------------------------------------------------ staging
    def _do(self, action: Callable[[], object]) -> None:
        if self._staged is None:
            action()
        else:
            self._staged.append(action)

    def setup(self, module: ModuleType) -> bool:
        """Run ``module.setup(self)`` and apply what it registered; ``False`` if a dependency is missing.

        Registrations are staged while ``setup`` runs: if it fails, none of them is applied. A duplicate name is
        refused when the staged registrations are applied, and that error is not swallowed: it is a bug to fix.
        """
        name = feature_name(module)
        missing = missing_requirement(module)
        if missing is not None:
            self._leave_out(name, missing)
            return False
        setup = getattr(module, "setup", None)
        if setup is None:
            return False
        staged: list[Callable[[], object]] = []
        self._staged, previous_owner = staged, self.owner
        self.owner = module.__name__
        try:
            try:
                setup(self)
            except ModuleNotFoundError as exc:
                # A dependency the feature did not declare in REQUIRES: start without it, and say what is missing.
                if not exc.name or exc.name.split(".")[0] == "bot":
                    raise
                self._leave_out(name, MissingExtra(name, getattr(module, "EXTRA", None) or name, exc.name))
                return False
            self._staged = None
            for action in staged:
                action()
        finally:
            self._staged, self.owner = None, previous_owner
        return True

    def _leave_out(self, name: str, missing: MissingExtra) -> None:
        self.missing[name] = missing
        log.info("%s", missing)


def load_features(registry: Registry, features: tuple[str, ...] = FEATURES) -> list[str]:
    """Import and set up each feature; returns the names of those that are on."""
    on = []
    for path in features:
        try:
            module = importlib.import_module(path)
        except ModuleNotFoundError as exc:
            if exc.name == path:
                continue  # not shipped in this installation
            raise
        if registry.setup(module):
            on.append(feature_name(module))
    return on


# ---------------------------------------------------------------------- the command line
@dataclass
class CliRegistry:
    """What a feature's ``setup_cli(cli)`` registers its command-line commands on.

    Attributes:
        app: the root ``blendwise`` typer app.
        groups: the core's command groups by name (``content``, ``cohort``...), for features adding to one.
        runtime: builds the runtime for a command (``runtime(adapters={})`` for one-shot commands).
        out: the console commands print to.
    """

    app: typer.Typer
    groups: dict[str, typer.Typer]
    runtime: Callable[..., Any]
    out: Any
    owners: dict[str, str] = field(default_factory=dict)
    owner: str = "bot.cli"

    def group(self, name: str) -> typer.Typer:
        return self.groups[name]

    def add_typer(self, app: typer.Typer, name: str) -> None:
        """Add a command group ``blendwise <name> ...``."""
        self._claim(name)
        self.app.add_typer(app, name=name)

    def claim(self, name: str) -> None:
        """Reserve a command name (the core's commands, or a feature's single command) before adding it."""
        self._claim(name)

    def _claim(self, name: str) -> None:
        if name in self.owners:
            raise DuplicateRegistration("command", name, self.owners[name], self.owner)
        self.owners[name] = self.owner


def load_cli(cli: CliRegistry, features: tuple[str, ...] = FEATURES) -> None:
    """Let every shipped feature add its command-line commands.

    The commands are registered even when a feature's extra is missing, so ``blendwise --help`` lists them and
    running one answers with the :class:`MissingExtra` line (exit code 2) instead of "no such command".
    """
    for path in features:
        try:
            module = importlib.import_module(path)
        except ModuleNotFoundError as exc:
            if exc.name == path:
                continue
            raise
        setup_cli = getattr(module, "setup_cli", None)
        if setup_cli is None:
            continue
        cli.owner = module.__name__
        try:
            setup_cli(cli)
        finally:
            cli.owner = "bot.cli"
