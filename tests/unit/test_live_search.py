"""Search ranking and permissions, on SQLite (FTS5) and PostgreSQL (tsvector)."""

from __future__ import annotations

from sqlalchemy import select

from bot.events import Actor, ButtonPressed
from bot.live import service
from bot.live.search import Scope
from bot.storage.db import transaction
from bot.storage.models import Cohort, Delivery, Person
from tests.conftest import make_cohort


def search(rt, terms, scope=None):
    live = service(rt)
    with rt.factory() as session:
        return live.search.search(session, terms, scope or Scope(everything=True))


def test_lessons_are_indexed_and_ranked(rt):
    results = search(rt, "delegation")
    assert results.hits and not results.loose
    top = results.hits[0]
    # The lesson with the word in its title and all through its body ranks first.
    assert (top.program_id, top.step_id) == ("new-manager-onboarding", "delegation")
    assert "**" in top.snippet
    scores = [h.score for h in results.hits]
    assert scores == sorted(scores, reverse=True)


def test_phrases_stemming_and_loose_fallback(rt):
    hits = search(rt, "one-on-ones").hits
    assert hits[0].step_id == "one-on-ones"
    assert search(rt, "delegating").hits[0].step_id == "delegation"  # stemmed
    loose = search(rt, "delegation zyxwvut")
    assert loose.loose and loose.hits
    assert (
        search(rt, 'NEAR( "AND" title:').hits == [] or True
    )  # FTS/tsquery syntax typed by a person is harmless


def test_learners_see_only_their_programs_and_cohorts(rt, console):
    make_cohort(rt, "new-manager-onboarding", [("ana", "Europe/London")], name="c1")
    make_cohort(
        rt, "new-manager-onboarding", [("bo", "Europe/London")], name="c2", channel="cohort-2", lead="lead2"
    )
    make_cohort(
        rt, "feedback-fundamentals", [("cy", "Europe/London")], name="c3", channel="cohort-3", lead="lead3"
    )
    live = service(rt)
    with transaction(rt.factory) as session:
        c1 = session.scalar(select(Cohort).where(Cohort.name == "c1"))
        row = rt.engine.live_session(session, c1, "kickoff")
        row.transcript = "Rui: Our secret word today is flamingo. Remember the flamingo."
        row.summary = "We talked about the flamingo."
        row.recap = {"summary": "We talked about the flamingo.", "key_points": []}
        row.recap_state = "released"
        live.search.index_session(session, row)

    def as_user(user_id, terms):
        with rt.factory() as session:
            person = session.scalar(select(Person).where(Person.user_id == user_id))
            scope = live.search.scope_for(session, person)
            return live.search.search(session, terms, scope).hits

    assert {h.kind for h in as_user("ana", "flamingo")} == {"summary", "transcript"}
    assert as_user("bo", "flamingo") == []  # same program, other cohort: not their session
    assert as_user("cy", "delegation") == []  # not enrolled in that program
    assert as_user("cy", "feedback")  # their own program
    assert as_user("bo", "delegation")
    assert {h.kind for h in as_user("lead", "flamingo")} == {"summary", "transcript"}  # the cohort's lead
    assert as_user("lead2", "flamingo") == []

    # Through chat: an ephemeral, ranked reply with open buttons; opening a result outside one's scope is refused.
    reply = console.command("ana", "search flamingo").ephemeral
    assert "flamingo" in reply.body and reply.buttons
    doc_id = reply.buttons[0].value
    refused = rt.dispatcher.handle(ButtonPressed(Actor("console", "console", "bo"), "search.open", doc_id))
    assert "not part of your programs" in refused.ephemeral.body
    opened = rt.dispatcher.handle(ButtonPressed(Actor("console", "console", "ana"), "search.open", doc_id))
    assert "flamingo" in opened.ephemeral.body
    assert "Nothing found" in console.command("cy", "search flamingo").ephemeral.body


def test_open_resends_an_unlocked_lesson(rt, console, clock):
    from datetime import timedelta

    make_cohort(rt, "new-manager-onboarding", [("ana", "Europe/London")])
    reply = console.command("ana", "search doing the work to leading").ephemeral
    doc = reply.buttons[0].value
    locked = rt.dispatcher.handle(ButtonPressed(Actor("console", "console", "ana"), "search.open", doc))
    assert "opens on" in locked.ephemeral.body
    clock.advance(timedelta(days=1, hours=8))
    rt.step()
    before = len(console.messages_to("ana"))
    again = rt.dispatcher.handle(ButtonPressed(Actor("console", "console", "ana"), "search.open", doc))
    assert "again" in again.ephemeral.body
    rt.drain()
    resent = console.messages_to("ana")[before:]
    assert resent and resent[-1].message.kind == "lesson"
    assert any(b.action == "lesson.done" for b in resent[-1].message.buttons)
    with rt.factory() as session:
        assert session.scalars(select(Delivery.purpose).where(Delivery.purpose == "reopen")).all() == [
            "reopen"
        ]
