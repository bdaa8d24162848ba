"""Live engagement and session reuse: polls, recordings and transcripts, AI recaps, catch-up lessons, search.

:func:`install` is called by :mod:`bot.extensions` when the runtime is built. It registers, on the core's
extension points:

* ``/learn`` subcommands ``poll``, ``recording``, ``recap`` and ``search``;
* buttons ``poll.vote``, ``poll.step``, ``catchup.done``, ``catchup.quiz``, ``catchup.answer``,
  ``recap.release`` and ``search.open``;
* outbox renderers for the purposes ``live_poll`` (channel), ``catchup``, ``recording``, ``recap_ready`` and
  ``reopen`` (direct messages);

and makes sure the feature's tables and the search index exist. See ``docs/live.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.clock import VirtualClock
from bot.live.service import Live, background, inline

if TYPE_CHECKING:
    from bot.app import Runtime

__all__ = ["Live", "install", "service"]


def install(runtime: Runtime) -> Live:
    from bot.live.chat import LiveChat
    from bot.live.llm import LLMClient
    from bot.live.purposes import CATCHUP, LIVE_POLL, RECAP_READY, RECORDING, REOPEN
    from bot.live.search import ensure_schema
    from bot.storage.models import StepProgress

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
    LiveChat(live, runtime.dispatcher.commands).install(runtime.dispatcher)
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
        runtime.sender.purposes.register(purpose, owner=__name__)
    live.search.index_library()
    runtime.__dict__["live"] = live
    return live


def service(runtime: Runtime) -> Live:
    """The :class:`Live` service installed on ``runtime`` (for the CLI, the demo and tests)."""
    live = runtime.__dict__.get("live")
    if live is None:
        live = install(runtime)
    return live
