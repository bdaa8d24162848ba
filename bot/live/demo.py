"""The live features in ``blendwise demo``: a missed first session becomes a catch-up lesson.

A few hours after the program's first live session, the lead attaches the recording link and the sample
transcript of *that* session (``samples/<program>--<session>.vtt``; the new-manager kickoff's is ``kickoff.vtt``)
with ``/learn recording``, reviews the draft (the offline summary: the demo
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

SAMPLES = Path(__file__).resolve().parent / "samples"
#: Samples named before the ``<program>--<session>.vtt`` convention.
NAMED = {("new-manager-onboarding", "kickoff"): "kickoff.vtt"}


def sample_transcript(program_id: str, step_id: str, title: str, agenda: list[str]) -> tuple[str, bytes]:
    """The demo transcript of one session: the shipped sample when there is one, else a short transcript read
    from the session's own agenda (a program simulated from outside ``content/``), never another program's."""
    name = NAMED.get((program_id, step_id), f"{program_id}--{step_id}.vtt")
    path = SAMPLES / name
    if path.is_file():
        return name, path.read_bytes()
    lines = [f"Welcome to {title}. Here is what we covered today."]
    lines += [f"We worked on this: {item}." for item in agenda] or [f"We spent the session on {title}."]
    lines.append("Thank you all. The recording and these notes are in your messages.")
    body = "\n\n".join(f"Rui Costa: {line}" for line in lines)
    return f"{step_id}.txt", body.encode("utf-8")


def recording_url(program_id: str, step_id: str) -> str:
    return f"https://recordings.example.com/{program_id}/{step_id}"


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
        cohort = session.get(Cohort, first.cohort_id)
        assert cohort is not None
        program = rt.library.program(cohort.program_id)
        step = program.step(step_id)
        agenda = [str(item) for item in getattr(step, "agenda", [])]
        transcript = sample_transcript(program.id, step_id, step.title, agenda)
        link = recording_url(program.id, step_id)

    def lead(args: str, attachments: tuple[tuple[str, bytes], ...] = ()) -> None:
        actor = sim.console.actor(lead_user)
        response = rt.dispatcher.handle(CommandInvoked(actor, args, attachments=attachments))
        if response.ephemeral is not None:
            sim.console.ephemerals.append((lead_user, response.ephemeral))

    def attach() -> None:
        lead(f"recording {step_id} {link} {cohort_name}", (transcript,))
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
