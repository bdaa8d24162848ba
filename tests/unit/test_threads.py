"""Cohort threads: one post per cohort, replies complete prompt steps, replays count once, lead posts, no injection."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.adapters.console import ConsoleAdapter
from bot.app import Runtime
from bot.clock import VirtualClock
from bot.events import ThreadReply
from bot.markup import unescape
from bot.storage.db import transaction
from bot.storage.models import CohortPost, LearningEvent
from tests.conftest import make_cohort
from tests.unit.helpers import build_runtime, count, events, state, titles

PROGRAM = """
id: threads
title: Threads
tz: Europe/London
defaults:
  reminders: {enabled: false}
steps:
  - id: hello
    title: Say hello
    kind: prompt
    text: Introduce yourself to the cohort in this thread.
  - id: greet
    title: Greeting
    kind: lesson
    body: "Hello {{ learner.name }}, welcome to {{ cohort.name }}."
"""

LEARNERS = [("ana", "Europe/London"), ("bo", "Europe/London"), ("cy", "America/New_York")]


@pytest.fixture
def rt(db_url: str, tmp_path: Path, clock: VirtualClock, console: ConsoleAdapter) -> Iterator[Runtime]:
    runtime = build_runtime(db_url, tmp_path, clock, console, {"threads": PROGRAM})
    make_cohort(runtime, "threads", LEARNERS)
    clock.set(datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
    runtime.step()
    yield runtime
    runtime.db.dispose()


def the_post(console: ConsoleAdapter):
    posts = [s for s in console.channel_posts("cohort-1") if s.message.title == "Discussion: Say hello"]
    assert len(posts) == 1
    return posts[0]


def test_prompt_posts_once_per_cohort(rt, clock, console):
    clock.set(datetime(2026, 3, 2, 14, 30, tzinfo=UTC))  # the New York learner's step unlocks now
    rt.step()
    post = the_post(console)
    assert [s.message.title for s in console.channel_posts("cohort-1")] == ["Discussion: Say hello"]
    assert "Introduce yourself to the cohort in this thread." in post.message.body
    assert count(rt, CohortPost) == 1
    with rt.factory() as session:
        row = session.query(CohortPost).one()
        assert (row.kind, row.step_id, row.channel, row.ref) == ("prompt", "hello", "cohort-1", post.ref.ts)
    # Each learner also gets a pointer to the thread in their DMs.
    assert "Say hello" in titles(console, "ana") and "Say hello" in titles(console, "cy")


def test_a_reply_in_the_thread_completes_the_prompt(rt, console):
    post = the_post(console)
    console.reply_in_thread("ana", post, "Hi, I'm Ana and I run the support team.")
    assert state(rt, "ana", "hello") == "done"
    assert state(rt, "bo", "hello") == "open"
    [replied] = events(rt, "replied", "ana")
    assert (replied.object_type, replied.object_id) == ("prompt", "program/threads/step/hello")
    assert replied.result == {"response": "Hi, I'm Ana and I run the support team."}
    assert [e.object_id for e in events(rt, "completed", "ana")] == ["program/threads/step/hello"]


def test_a_reply_in_an_unknown_thread_does_nothing(rt, console):
    before = count(rt, LearningEvent)
    response = rt.dispatcher.handle(
        ThreadReply(console.actor("ana"), "cohort-1", "99999999", "Hello?", "m-unknown")
    )
    assert (response.ephemeral, response.replace) == (None, None)
    assert count(rt, LearningEvent) == before
    assert state(rt, "ana", "hello") == "open"


def test_a_replayed_reply_counts_once(rt, console):
    post = the_post(console)
    reply = ThreadReply(console.actor("bo"), post.ref.channel, post.ref.ts, "Hello all", "m-1")
    rt.dispatcher.handle(reply)
    rt.dispatcher.handle(reply)  # the platform retried the event
    assert len(events(rt, "replied", "bo")) == 1
    assert len(events(rt, "completed", "bo")) == 1
    # A second, different message from the same learner is participation, but completes nothing new.
    rt.dispatcher.handle(
        ThreadReply(console.actor("bo"), post.ref.channel, post.ref.ts, "And another", "m-2")
    )
    assert len(events(rt, "replied", "bo")) == 2
    assert len(events(rt, "completed", "bo")) == 1


def test_a_reply_from_someone_not_enrolled_records_nothing(rt, console):
    post = the_post(console)
    console.reply_in_thread("stranger", post, "Hi")
    assert events(rt, "replied") == []


def test_lead_prompt_and_announce_post_to_the_channel(rt, console):
    assert console.command("lead", 'prompt c1 "What surprised you this week?"').ephemeral.body.startswith(
        "Posting your prompt to cohort-1."
    )
    console.command("lead", "announce c1 The workshop moves to Room 4.")
    rt.drain()
    posts = [s for s in console.channel_posts("cohort-1") if s.thread is None]
    assert [p.message.title for p in posts] == ["Discussion: Say hello", "Discussion", "Announcement"]
    assert "What surprised you this week?" in posts[1].message.body
    assert "The workshop moves to Room 4." in posts[2].message.body
    with rt.factory() as session:
        kinds = [(r.kind, r.step_id) for r in session.query(CohortPost).order_by(CohortPost.id)]
    assert kinds == [("prompt", "hello"), ("prompt", None), ("announce", None)]
    # Replies under the lead's prompt count as participation.
    console.reply_in_thread("ana", posts[1], "The SBI model.")
    [replied] = events(rt, "replied", "ana")
    assert replied.object_id.startswith("cohort/")


def test_people_text_is_never_evaluated_as_a_template(rt, clock, console):
    console.command("lead", "announce c1 {{ 7*7 }} and {% raw %}")
    rt.drain()
    announcement = next(s for s in console.channel_posts("cohort-1") if s.message.title == "Announcement")
    assert "{{ 7*7 }} and {% raw %}" in announcement.message.body
    assert "49" not in announcement.message.body
    post = the_post(console)
    console.reply_in_thread("ana", post, "My answer is {{ 7*7 }}")
    assert events(rt, "replied", "ana")[0].result == {"response": "My answer is {{ 7*7 }}"}
    # A learner whose display name looks like a template is greeted by it, literally.
    with transaction(rt.factory) as session:
        cohort = rt.engine.cohort_by_name(session, "console", "c1")
        sly = rt.engine.person(session, "console", "console", "sly", name="{{ 7*7 }}", tz="Europe/London")
        rt.engine.enroll(session, cohort, sly)
    clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    rt.step()
    greeting = next(s for s in console.messages_to("sly") if s.message.title == "Greeting")
    # It is also kept inert in the Markdown: the ``*`` is escaped and reads back as itself.
    assert greeting.message.body == "Hello {{ 7\\*7 }}, welcome to c1."
    assert unescape(greeting.message.body) == "Hello {{ 7*7 }}, welcome to c1."
