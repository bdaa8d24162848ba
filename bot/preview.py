"""``blendwise content preview``: a step as a learner will receive it, before any cohort exists.

Nothing is imitated: a throw-away runtime (a temporary SQLite database, the console adapter, a virtual clock)
enrols one sample learner in a cohort starting on a Monday, and the real :class:`~bot.journeys.compose.Composer`
builds the step's messages, the same call the outbox makes at delivery. For a chat platform the messages then go
through that platform's own renderer, reached through the platform registry (the core names no platform).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from bot.adapters.console import ConsoleAdapter
from bot.app import build
from bot.clock import VirtualClock
from bot.config import Settings
from bot.errors import BlendwiseError
from bot.journeys.compose import Composer
from bot.journeys.render import SAMPLE_LEARNERS, SAMPLE_START
from bot.messages import Message
from bot.storage.db import transaction
from bot.storage.models import StepProgress

WORKSPACE = "preview"


@dataclass(frozen=True)
class StepPreview:
    """The messages one step becomes, in delivery order."""

    step_id: str
    kind: str
    messages: list[Message]


def preview_steps(content_dir: Path, program_id: str, step_id: str | None = None) -> list[StepPreview]:
    """Compose every step of ``program_id`` (or only ``step_id``) for the first sample learner.

    Raises:
        ContentError: the content does not pass the check.
        BlendwiseError: no such program or step.
    """
    with tempfile.TemporaryDirectory(prefix="blendwise-preview-") as scratch:
        settings = Settings.model_validate(
            {
                "database_url": f"sqlite:///{Path(scratch) / 'preview.db'}",
                "content_dir": content_dir,
                "timezone": "Europe/London",
            }
        )
        clock = VirtualClock(datetime.combine(SAMPLE_START - timedelta(days=1), datetime.min.time(), tzinfo=UTC))
        rt = build(settings, clock=clock, adapters={"console": ConsoleAdapter(out=None)})
        if program_id not in rt.library:
            raise BlendwiseError(f"no program '{program_id}' in {content_dir} (programs: {', '.join(rt.library.ids())})")
        program = rt.library.program(program_id)
        steps = [s for s in program.steps if step_id in (None, s.id)]
        if not steps:
            known = ", ".join(s.id for s in program.steps)
            raise BlendwiseError(f"--step: program '{program_id}' has no step '{step_id}' (steps: {known})")
        _label, name, _first, tz = SAMPLE_LEARNERS[0]
        composer = Composer(rt.engine)
        with transaction(rt.factory) as session:
            person = rt.engine.person(session, "console", WORKSPACE, "u-sample", name=name, tz=tz)
            cohort = rt.engine.create_cohort(
                session, name="preview", program_id=program_id, platform="console", workspace=WORKSPACE,
                start=SAMPLE_START, channel="cohort-preview",
            )  # fmt: skip
            enrollment = rt.engine.enroll(session, cohort, person)
            rows = {
                sp.step_id: sp
                for sp in session.scalars(select(StepProgress).where(StepProgress.enrollment_id == enrollment.id))
            }
            return [StepPreview(s.id, s.kind, composer.step_card(session, rows[s.id])) for s in steps if s.id in rows]
