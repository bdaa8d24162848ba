"""The live features in ``blendwise demo``: a missed kickoff becomes a catch-up lesson.

A few hours after the program's first live session, the lead attaches the recording link and the shipped sample
transcript (``samples/kickoff.vtt``) with ``/learn recording``, reviews the draft (the offline summary: the demo
configures no LLM) and releases it with ``/learn recap release``. Learners who missed the session receive the
catch-up lesson; the simulated learners complete it (or not) according to their persona, through the same
buttons a person would press. The report then shows ``missed (+N caught up)``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bot.events import CommandInvoked
from bot.storage.models import Cohort, LiveSessionRow

if TYPE_CHECKING:
    from bot.adapters.console import Sent
    from bot.demo import Simulation

SAMPLE = Path(__file__).resolve().parent / "samples" / "kickoff.vtt"
RECORDING_URL = "https://recordings.example.com/new-manager-onboarding/kickoff"


def plan_catch_up(sim: Simulation, cohort_name: str, lead_user: str) -> None:
    rt = sim.rt
    with rt.factory() as session:
        from sqlalchemy import select

        first = session.scalars(
            select(LiveSessionRow)
            .join(Cohort, Cohort.id == LiveSessionRow.cohort_id)
            .where(Cohort.name == cohort_name)
            .order_by(LiveSessionRow.start_at)
        ).first()
        if first is None:
            return
        step_id, ready_at = first.step_id, max(first.end_at, first.checkin_closes_at) + timedelta(hours=3)

    def lead(args: str, attachments: tuple[tuple[str, bytes], ...] = ()) -> None:
        actor = sim.console.actor(lead_user)
        response = rt.dispatcher.handle(CommandInvoked(actor, args, attachments=attachments))
        if response.ephemeral is not None:
            sim.console.ephemerals.append((lead_user, response.ephemeral))

    def attach() -> None:
        lead(f"recording {step_id} {RECORDING_URL} {cohort_name}", (("kickoff.vtt", SAMPLE.read_bytes()),))
        lead(f"recap review {step_id} {cohort_name}")
        lead(f"recap release {step_id} {cohort_name}")

    sim.later((ready_at - sim.clock.now()).total_seconds() / 3600, attach)
    sim.console.listeners.append(lambda sent: _on_catch_up(sim, sent))


def _on_catch_up(sim: Simulation, sent: Sent) -> None:
    user = sent.user_id
    if user is None or user not in sim.personas:
        return
    actions = {b.action for b in sent.message.buttons}
    if "catchup.done" not in actions:
        return
    persona = sim.personas[user]
    if sim.rng.random() > persona.act:
        return
    sim.later(sim.delay(persona), lambda: _catch_up(sim, user, sent))


def _catch_up(sim: Simulation, user: str, sent: Sent) -> None:
    sim.personas[user]
    quiz = [b for b in sent.message.buttons if b.action == "catchup.quiz"]
    if quiz:
        sim.console.press(user, sent, quiz[0])
        for _ in range(10):
            answers = [b for b in sent.message.buttons if b.action == "catchup.answer"]
            if not answers:
                return
            pick = sim.rng.choice(answers)
            sim.console.press(user, sent, pick)
        return
    sim.press(user, sent, "catchup.done")
