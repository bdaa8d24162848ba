"""Role checks on /learn subcommands and buttons: learner, lead (per cohort), manager, admin."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot.adapters.console import ConsoleAdapter
from bot.app import Runtime
from bot.clock import VirtualClock
from bot.storage.db import transaction
from bot.storage.models import Cohort, Delivery
from tests.conftest import make_cohort
from tests.unit.helpers import build_runtime, button, count, state

PROGRAM = """
id: roles
title: Roles
tz: Europe/London
defaults:
  reminders: {enabled: false}
steps:
  - id: read
    title: Read
    kind: lesson
    body: Read this.
  - id: workshop
    title: Workshop
    kind: session
    start: {day: 2, at: "14:00"}
"""

LEAD_ONLY = "Only a lead of cohort 'c1' can do that."
ADMIN_ONLY = "Only a Blendwise admin can do that."


@pytest.fixture
def rt(db_url: str, tmp_path: Path, clock: VirtualClock, console: ConsoleAdapter) -> Iterator[Runtime]:
    runtime = build_runtime(db_url, tmp_path, clock, console, {"roles": PROGRAM})
    make_cohort(runtime, "roles", [("ana", "Europe/London"), ("bo", "Europe/London")], manager="mia")
    make_cohort(runtime, "roles", [("cy", "Europe/London")], name="c2", channel="cohort-2", lead="lead2")
    yield runtime
    runtime.db.dispose()


def say(console: ConsoleAdapter, user: str, args: str) -> str:
    reply = console.command(user, args)
    assert reply.ephemeral is not None
    return reply.ephemeral.body


@pytest.mark.parametrize(
    "args",
    ["prompt c1 Hello everyone", "announce c1 Hello everyone", "checkin open workshop c1", "roster c1"],
)
def test_lead_commands_are_refused_for_a_learner(rt, console, args):
    assert say(console, "ana", args) == LEAD_ONLY
    assert count(rt, Delivery, Delivery.person_id.is_(None)) == 0


@pytest.mark.parametrize("args", ["cohort create c3 roles 2026-03-09", "enroll c1 @dee", "cohort list"])
def test_admin_commands_are_refused_for_a_lead_who_is_not_an_admin(rt, console, args):
    assert say(console, "lead", args) == ADMIN_ONLY
    assert say(console, "ana", args) == ADMIN_ONLY


def test_an_admin_can_create_cohorts_and_enroll(rt, console):
    reply = say(console, "admin", "cohort create c3 roles 2026-03-09 Europe/Paris #cohort-3")
    assert reply == "Created cohort c3 (roles) starting 2026-03-09. You are its lead."
    with rt.factory() as session:
        c3 = session.query(Cohort).filter_by(name="c3").one()
        assert (c3.tz, c3.channel, c3.start_date) == ("Europe/Paris", "cohort-3", date(2026, 3, 9))
    assert say(console, "admin", "enroll c3 @dee @eve") == "Enrolled 2 in c3: dee, eve."
    assert state(rt, "dee", "read") == "locked"
    assert "c3: roles, starts 2026-03-09, cohort-3" in say(console, "admin", "cohort list")


def test_admin_input_errors_are_explained(rt, console):
    assert say(console, "admin", "cohort create c4 nope 2026-03-09").startswith(
        "No program 'nope'. Known: roles"
    )
    assert (
        say(console, "admin", "cohort create c4 roles 9-3-2026")
        == "'9-3-2026' is not a date; use YYYY-MM-DD."
    )
    assert say(console, "admin", "cohort create c4 roles 2026-03-09 Mars/Olympus").startswith(
        "unknown time zone 'Mars/Olympus'"
    )
    assert say(console, "admin", "enroll nowhere @dee").startswith(
        "There is no cohort called 'nowhere' here."
    )


def test_a_lead_acts_on_their_own_cohort_only(rt, console, clock):
    assert (
        say(console, "lead", "roster c1") == "- Ana: 0/2 steps, 0/1 sessions\n- Bo: 0/2 steps, 0/1 sessions"
    )
    assert say(console, "lead", "roster c2") == "Only a lead of cohort 'c2' can do that."
    assert say(console, "lead", "announce c2 hi") == "Only a lead of cohort 'c2' can do that."
    assert say(console, "lead", "checkin open workshop c2") == "Only a lead of cohort 'c2' can do that."
    assert say(console, "lead2", "roster c2") == "- Cy: 0/2 steps, 0/1 sessions"
    assert say(console, "lead", "announce c1 Welcome!") == "Announcement queued for cohort-1."


def test_an_admin_may_act_as_lead_anywhere(rt, console):
    reply = console.command("admin", "roster c2").ephemeral
    assert (reply.title, reply.body) == ("Roster: c2 (1)", "- Cy: 0/2 steps, 0/1 sessions")


def test_unknown_subcommand_lists_what_the_person_may_use(rt, console):
    reply = say(console, "ana", "frobnicate")
    assert reply.startswith("I don't know '/learn frobnicate'. Try one of: ")
    assert reply.endswith(". `/learn help` explains each.")
    offered = reply.split("Try one of: ")[1].split(".")[0].split(", ")
    assert {"help", "next", "pause", "progress", "resume", "snooze"} <= set(offered)
    assert not {"announce", "roster", "enroll", "cohort", "team"} & set(offered)  # not for a plain learner
    lead = say(console, "lead", "frobnicate")
    assert "announce" in lead and "roster" in lead and "enroll" not in lead


def test_help_shows_sections_by_role(rt, console):
    learner = say(console, "ana", "help")
    assert "**Blendwise: /learn commands**" in learner
    assert "For cohort leads" not in learner and "For admins" not in learner and "For managers" not in learner
    assert "For cohort leads" in say(console, "lead", "help")
    assert "For managers" in say(console, "mia", "help")
    admin = say(console, "admin", "help")
    assert "For admins" in admin and "For cohort leads" in admin
    assert say(console, "ana", "") == learner  # a bare /learn is help


def test_a_learner_cannot_press_another_learners_button(rt, clock, console):
    clock.set(datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
    rt.step()
    sent, done = button(console, "ana", "lesson.done", "Read")
    reply = console.press("bo", sent, done)
    assert reply.ephemeral.body == "That button belongs to someone else's journey."
    assert state(rt, "ana", "read") == "open"
    assert state(rt, "bo", "read") == "open"


def test_team_is_for_managers_and_shows_only_their_reports(rt, console):
    assert (
        say(console, "ana", "team")
        == "`/learn team` is for managers; nobody reports to you in Blendwise yet."
    )
    with transaction(rt.factory) as session:
        other = rt.engine.person(session, "console", "console", "max", name="Max")
        cy = rt.engine.person(session, "console", "console", "cy")
        cy.manager_id = other.id
    body = say(console, "mia", "team")
    names = [line.split("**")[1] for line in body.splitlines() if line.startswith("- ")]
    assert names == ["Ana", "Bo"]
    assert [
        line.split("**")[1] for line in say(console, "max", "team").splitlines() if line.startswith("- ")
    ] == ["Cy"]
