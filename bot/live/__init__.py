"""Live engagement and session reuse: polls, recordings and transcripts, AI recaps, catch-up lessons, search.

A feature (see :mod:`bot.registry`): :func:`setup` registers, on the core's registry,

* ``/learn`` subcommands ``poll``, ``recording``, ``recap`` and ``search``;
* buttons ``poll.vote``, ``poll.step`` (program poll steps: poll logic lives in this feature only),
  ``catchup.done``, ``catchup.quiz``, ``catchup.answer``, ``recap.release`` and ``search.open``;
* outbox purposes ``live_poll`` (channel), ``catchup``, ``recording``, ``recap_ready`` and ``reopen``;
* the :class:`Live` service (``runtime.feature("live")``) and the demo's catch-up scenario;

and makes sure the feature's tables and the search index exist. :func:`setup_cli` adds ``blendwise session ...``,
``blendwise search`` and ``blendwise content draft-quiz``. See ``docs/live.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.clock import VirtualClock
from bot.live.service import Live, background, inline

if TYPE_CHECKING:
    from bot.app import Runtime
    from bot.registry import CliRegistry, Registry

__all__ = ["Live", "service", "setup", "setup_cli"]

#: Everything the live feature needs ships with the core (the LLM client talks HTTP itself), so no extra.
EXTRA: str | None = None
REQUIRES: tuple[str, ...] = ()


def setup(registry: Registry) -> None:
    from bot.live.chat import LiveChat
    from bot.live.demo import plan_catch_up
    from bot.live.llm import LLMClient
    from bot.live.purposes import CATCHUP, LIVE_POLL, RECAP_READY, RECORDING, REOPEN
    from bot.live.schedule import ScheduleChat
    from bot.live.search import ensure_schema
    from bot.storage.models import StepProgress

    runtime = registry.runtime
    ensure_schema(runtime.db)
    live = Live(
        factory=runtime.factory,
        engine=runtime.engine,
        adapters=runtime.adapters,
        clock=runtime.clock,
        llm=LLMClient.from_settings(runtime.settings.llm),
        # Under a virtual clock (the demo, tests) nothing may happen behind the simulation's back.
        run_later=inline if isinstance(runtime.clock, VirtualClock) else background(),
    )
    chat = LiveChat(live, runtime.dispatcher.commands)
    chat.install(registry)
    ScheduleChat(chat).install(registry)
    composer = runtime.sender.composer

    def reopen(session: Any, d: Any) -> Any:
        sp = session.get(StepProgress, d.progress_id)
        return composer.step_card(session, sp) if sp is not None else None

    for purpose in (
        LIVE_POLL.bind(live.polls.render_post),
        CATCHUP.bind(live.recaps.render_catchup),
        RECORDING.bind(live.recaps.render_recording),
        RECAP_READY.bind(live.recaps.render_ready),
        REOPEN.bind(reopen),
    ):
        registry.add_purpose(purpose)
    registry.add_demo(plan_catch_up)
    registry.add_planner(lambda session, engine, now: live.recaps.catch_up_late_joiners(session), "live.late_joiners")
    registry.provide("live", live)
    live.search.index_library()


def setup_cli(cli: CliRegistry) -> None:
    from bot.live.cli import register

    register(cli)


def service(runtime: Runtime) -> Live:
    """The :class:`Live` service of ``runtime`` (for the CLI, the demo and tests)."""
    live: Live = runtime.feature("live")
    return live
