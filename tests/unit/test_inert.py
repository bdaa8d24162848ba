"""Person and learner text stays inert: a display name that looks like Markdown is shown, never rendered.

Every case goes through the real renderers (Slack Block Kit, Discord embeds) and the console, and the CSV report
is checked against OWASP's CSV-injection rule. Nothing of ours is mocked.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.adapters.discord import render as discord_render
from bot.adapters.slack import render as slack_render
from bot.app import Runtime
from bot.markup import Markdown, inert, unescape
from bot.messages import Message
from bot.nudges.digests import digest_message
from bot.reporting import CSV_COLUMNS, Filters, build_report
from bot.storage.db import transaction
from bot.storage.models import Person
from tests.conftest import make_cohort
from tests.unit.helpers import build_runtime

PROGRAM = """
id: inert
title: Inert
tz: Europe/London
defaults:
  reminders: {enabled: false}
steps:
  - id: hello
    title: Hello
    kind: lesson
    body: "Hello {{ learner.first_name }}, welcome."
"""

LINK_NAME = "[click me](https://evil.example/x)"
BOLD_NAME = "**Boss** _Lady_"
#: A Markdown link the renderer would turn into a live one: brackets and parenthesis not backslash-escaped.
LIVE_MD_LINK = re.compile(r"(?<!\\)\[[^\]]*(?<!\\)\]\(")


@pytest.fixture
def rt(db_url: str, tmp_path: Path, clock, console) -> Iterator[Runtime]:
    runtime = build_runtime(db_url, tmp_path, clock, console, {"inert": PROGRAM})
    make_cohort(runtime, "inert", [("ana", "Europe/London"), ("bo", "Europe/London")], manager="mia")
    rename(runtime, {"ana": LINK_NAME, "bo": BOLD_NAME})
    yield runtime
    runtime.db.dispose()


def rename(rt: Runtime, names: dict[str, str]) -> None:
    with transaction(rt.factory) as session:
        for person in session.query(Person).filter(Person.user_id.in_(list(names))):
            person.name = names[person.user_id]


def slack_texts(message: Message) -> str:
    """Every mrkdwn and fallback string Slack would receive for ``message``."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for part in slack_render.render_message(message):
        found.append(part.text)
        walk(part.blocks)
    return "\n".join(found)


def discord_markdown(message: Message) -> str:
    """Every Discord string that Discord renders as Markdown: content, embed descriptions and field values."""
    found: list[str] = []
    for part in discord_render.render(message):
        found.append(part.content or "")
        for embed in part.embeds:
            found.append(embed.description or "")
            found += [str(f.value) for f in embed.fields]
    return "\n".join(found)


def assert_inert(message: Message) -> None:
    """The link and the emphasis show as characters on Slack, Discord and the console."""
    slack = slack_texts(message)
    assert "https://evil.example/x|" not in slack  # no <url|label> link was built
    assert "[click me](https://evil.example/x)" in slack  # the name is shown as typed
    assert "*Boss*" not in slack and "_Lady_" not in slack  # no bold or italic pair survives
    assert "\u200b*\u200b*Boss\u200b*\u200b* \u200b_Lady\u200b_" in slack
    discord = discord_markdown(message)
    assert LINK_NAME not in discord and LIVE_MD_LINK.search(discord) is None
    assert r"\[click me\](https://evil.example/x)" in discord
    assert r"\*\*Boss\*\* \_Lady\_" in discord
    console = unescape(message.body)
    assert LINK_NAME in console and BOLD_NAME in console


def test_manager_digest_shows_names_as_text(rt):
    with rt.factory() as session:
        manager = session.query(Person).filter_by(user_id="mia").one()
        message = digest_message(session, rt.engine, manager)
    assert_inert(message)


def test_lead_roster_shows_names_as_text(rt, console):
    reply = console.command("lead", "roster c1")
    assert reply.ephemeral is not None
    assert_inert(reply.ephemeral)


def test_admin_enroll_reply_shows_names_as_text(rt, console):
    with transaction(rt.factory) as session:
        for user_id, name in (("eve", LINK_NAME), ("zed", BOLD_NAME)):
            rt.engine.person(session, "console", "console", user_id, name=name)
    reply = console.command("admin", "enroll c1 @eve @zed")
    assert reply.ephemeral is not None
    assert "Enrolled 2 in c1" in reply.ephemeral.body
    assert_inert(reply.ephemeral)


def test_a_name_inside_authored_content_stays_text(rt, clock, console):
    rename(rt, {"ana": "[me](https://evil.example/x)"})
    clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    rt.step()
    [lesson] = [s.message for s in console.messages_to("ana") if s.message.kind == "lesson"]
    assert LIVE_MD_LINK.search(discord_markdown(lesson)) is None
    assert "https://evil.example/x|" not in slack_texts(lesson)
    assert unescape(lesson.body) == "Hello [me](https://evil.example/x), welcome."


def test_poll_options_typed_by_a_lead_stay_text(rt, console):
    reply = console.command("lead", f'poll c1 "Which?" "{LINK_NAME}" "{BOLD_NAME}"')
    assert reply.ephemeral is not None and "is on its way" in reply.ephemeral.body
    rt.drain()
    [post] = [s.message for s in console.channel_posts("cohort-1") if s.message.kind == "poll"]
    assert_inert(post)


@given(st.text(max_size=60))
def test_inert_text_reads_back_as_itself_and_never_links(text):
    escaped = inert(text)
    assert unescape(escaped) == text
    assert inert(escaped) == escaped  # already Markdown: escaping twice changes nothing
    slack = slack_render.inline(escaped)
    assert "<" not in slack  # Slack markup (a <url|label> link, a mention) only ever comes from our own links
    assert LIVE_MD_LINK.search(escaped) is None


def test_authored_markdown_keeps_its_links():
    body = Markdown("Read [the guide](https://example.com/guide) now, " + inert(LINK_NAME))
    slack = slack_render.inline(body)
    assert "<https://example.com/guide|the guide>" in slack
    assert "https://evil.example/x|" not in slack


# ---------------------------------------------------------------------------------------------------- CSV
HOSTILE = {
    "ana": '=HYPERLINK("https://evil.example/x","click")',
    "bo": "+1+2",
}


def test_csv_neutralises_formulas_and_files_get_a_bom(rt, tmp_path):
    names = {**HOSTILE}
    rename(rt, names)
    with transaction(rt.factory) as session:
        cohort = rt.engine.cohort_by_name(session, "console", "c1")
        for user_id, name in (("cy", "-3-4"), ("di", "@SUM(A1)"), ("ed", "\tTab"), ("fy", "\rReturn"), ("gu", "Zoë")):
            rt.engine.enroll(session, cohort, rt.engine.person(session, "console", "console", user_id, name=name))
    with rt.factory() as session:
        report = build_report(session, rt.engine, Filters())
    plain = report.to_csv()
    assert not plain.startswith("\ufeff")
    rows = {r["user_id"]: r for r in csv.DictReader(io.StringIO(plain, newline=""))}
    assert rows["ana"]["name"] == "'" + HOSTILE["ana"]
    assert rows["bo"]["name"] == "'+1+2"
    assert rows["cy"]["name"] == "'-3-4"
    assert rows["di"]["name"] == "'@SUM(A1)"
    assert rows["ed"]["name"] == "'\tTab"
    assert rows["fy"]["name"] == "'\rReturn"
    assert rows["gu"]["name"] == "Zoë"
    assert rows["ana"]["manager"] == "Morgan Manager"
    assert rows["ana"]["steps_total"] == "1"  # numbers stay numbers
    for row in rows.values():
        for column in CSV_COLUMNS:
            assert not row[column].startswith(("=", "+", "-", "@", "\t", "\r")), (column, row[column])
    with_bom = report.to_csv(bom=True)
    assert with_bom.startswith("\ufeff") and with_bom[1:] == plain
    # JSON is data, not a spreadsheet: it keeps the names exactly.
    assert {r["name"] for r in json.loads(report.to_json())["learners"]} >= set(HOSTILE.values())
