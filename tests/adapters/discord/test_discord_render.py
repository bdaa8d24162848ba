"""Rendering, intents, endpoints and presence bookkeeping: the parts of the adapter that need no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import discord
import pytest

from bot.adapters.discord import configure_endpoints, intents_for
from bot.adapters.discord.convert import command_invoked, mentioned_users, modal_text
from bot.adapters.discord.presence import PresenceTracker, TrackedSession
from bot.adapters.discord.render import (
    MAX_DESCRIPTION,
    MAX_TOTAL,
    ZWSP,
    neutralise,
    render,
    render_single,
    split_text,
    thread_name,
)
from bot.adapters.discord.ui import parse_custom_id
from bot.errors import AdapterError
from bot.messages import Attachment, Button, Field, Message

pytestmark = [pytest.mark.discord, pytest.mark.timeout(30)]


def test_mentions_are_neutralised_but_markdown_passes() -> None:
    text = "**Well done** @everyone and @here, ask <@123>, <@!456> or <@&789>; see [docs](https://x.y) _now_"
    out = neutralise(text)
    assert "@everyone" not in out and "@here" not in out
    assert f"@{ZWSP}everyone" in out and f"@{ZWSP}here" in out
    assert f"<@{ZWSP}123>" in out and f"<@{ZWSP}!456>" in out and f"<@{ZWSP}&789>" in out
    assert "**Well done**" in out and "[docs](https://x.y)" in out and "_now_" in out


def test_plain_message_is_content_and_every_send_allows_no_mentions() -> None:
    parts = render(Message(text="Hi @everyone"))
    assert len(parts) == 1
    kwargs = parts[0].send_kwargs()
    assert kwargs["content"] == f"Hi @{ZWSP}everyone"
    assert kwargs["allowed_mentions"].to_dict()["parse"] == []  # type: ignore[union-attr]
    assert "embeds" not in kwargs and "view" not in kwargs


def test_rich_message_becomes_an_embed_with_buttons_in_rows_of_five() -> None:
    buttons = [Button(f"Option {n}", "answer", f"q1:{n}") for n in range(7)]
    message = Message(
        text="fallback",
        title="Quiz @here",
        body="Which one?",
        fields=[Field("Due", "Friday")],
        buttons=buttons,
        context="Step 3 of 8",
        attachments=[Attachment("session.ics", b"BEGIN:VCALENDAR", "text/calendar", "Invite")],
        kind="quiz",
    )
    (part,) = render(message)
    assert part.content is None
    (embed,) = part.embeds
    assert embed.title == f"Quiz @{ZWSP}here"
    assert embed.description == "Which one?"
    assert embed.footer.text == "Step 3 of 8"
    assert [(f.name, f.value) for f in embed.fields] == [("Due", "Friday")]
    view = part.view()
    assert view is not None
    rows = view.to_components()
    assert [len(r["components"]) for r in rows] == [5, 2]
    assert [c["custom_id"] for r in rows for c in r["components"]] == [b.action_id for b in buttons]
    assert [f.filename for f in part.files] == ["session.ics"]


def test_a_join_button_is_a_link_button_with_no_interaction() -> None:
    buttons = [Button("Going", "rsvp.yes", "6"), Button("Join", "session.join", "6", url="https://meet.example.com/x")]
    buttons.append(Button("Not a web link", "session.join", "7", url="javascript:alert(1)"))
    (part,) = render(Message(text="t", buttons=buttons, kind="session"))
    view = part.view()
    assert view is not None
    going, join, other = (c for r in view.to_components() for c in r["components"])
    assert join == {"type": 2, "style": discord.ButtonStyle.link.value, "label": "Join",
                    "url": "https://meet.example.com/x", "disabled": False}
    assert going["custom_id"] == "bw:rsvp.yes:6" and other["custom_id"] == "bw:session.join:7"


def test_long_body_is_split_within_discord_limits_with_buttons_last() -> None:
    paragraphs = [f"Paragraph {n}. " + "word " * 180 for n in range(30)]
    body = "\n\n".join(paragraphs)
    message = Message(text="x", title="A long lesson", body=body, buttons=[Button("Done", "done", "s1")])
    parts = render(message)
    assert len(parts) > 1
    for part in parts:
        assert len(part.embeds) <= 10
        assert sum(len(e) for e in part.embeds) <= MAX_TOTAL
        assert all(len(e.description or "") <= MAX_DESCRIPTION for e in part.embeds)
    assert all(not p.buttons for p in parts[:-1]) and parts[-1].buttons
    joined = " ".join(e.description or "" for p in parts for e in p.embeds)
    assert all(f"Paragraph {n}." in joined for n in range(30))
    assert parts[0].embeds[0].title == "A long lesson"


def test_split_prefers_paragraphs_then_words() -> None:
    text = "a" * 50 + "\n\n" + "b" * 50
    assert split_text(text, 60) == ["a" * 50, "b" * 50]
    words = " ".join(["word"] * 40)
    chunks = split_text(words, 50)
    assert all(len(c) <= 50 for c in chunks)
    assert " ".join(chunks) == words
    assert split_text("x" * 120, 50) == ["x" * 50, "x" * 50, "x" * 20]


def test_render_single_shortens_instead_of_splitting() -> None:
    part = render_single(Message(text="x", title="T", body="y" * 20000))
    assert len(part.embeds) == 1
    assert len(part.embeds[0]) <= MAX_TOTAL
    assert part.embeds[0].description.endswith("…")  # type: ignore[union-attr]


def test_button_limits_are_refused_with_the_offending_id() -> None:
    with pytest.raises(AdapterError, match="at most 25") as too_many:
        render(Message(text="x", buttons=[Button(str(n), "a", str(n)) for n in range(26)]))
    assert too_many.value.retryable is False
    with pytest.raises(AdapterError, match="longer than"):
        render(Message(text="x", buttons=[Button("b", "a", "v" * 120)]))
    with pytest.raises(AdapterError, match="twice"):
        render(Message(text="x", buttons=[Button("b", "a", "1"), Button("c", "a", "1")]))


def test_custom_id_round_trip() -> None:
    assert parse_custom_id(Button("x", "rsvp", "12:yes").action_id) == ("rsvp", "12:yes")
    assert parse_custom_id("bw:next:") == ("next", "")
    assert parse_custom_id("other:thing") is None


def test_thread_name_from_title_or_text() -> None:
    assert (
        thread_name(Message(text="ignored", title="Week 1: what surprised you?"))
        == "Week 1: what surprised you?"
    )
    assert thread_name(Message(text="First line\nsecond")) == "First line"
    assert len(thread_name(Message(text="z" * 300))) == 100


def test_modal_text_reads_rows_and_labels() -> None:
    rows = [{"type": 1, "components": [{"type": 4, "custom_id": "bw:text", "value": "in a row"}]}]
    labels = [{"type": 18, "component": {"type": 4, "custom_id": "bw:text", "value": "in a label"}}]
    assert modal_text(rows) == "in a row"
    assert modal_text(labels) == "in a label"
    assert modal_text([]) == ""


def test_mentions_in_command_text() -> None:
    assert mentioned_users("enroll onboarding <@12> <@!34> <@12>") == ("12", "34")
    assert command_invoked.__doc__  # the args format is documented where it is built


def test_intents_are_the_minimum_and_not_privileged_by_default() -> None:
    intents = intents_for()
    expected = discord.Intents.none()
    expected.guilds = expected.guild_messages = expected.voice_states = expected.guild_scheduled_events = True
    assert intents == expected
    assert not intents.members and not intents.presences and not intents.message_content
    assert not intents.dm_messages
    assert intents_for(read_message_content=True).message_content


def test_configure_endpoints_points_rest_and_gateway() -> None:
    configure_endpoints("http://127.0.0.1:9/api/v10/", "ws://127.0.0.1:9/ws")
    assert discord.http.Route.BASE == "http://127.0.0.1:9/api/v10"
    assert discord.http.Route("GET", "/users/@me").url == "http://127.0.0.1:9/api/v10/users/@me"
    assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == "ws://127.0.0.1:9/ws"
    configure_endpoints(None, None)
    assert discord.http.Route.BASE == "https://discord.com/api/v10"
    assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == "wss://gateway.discord.gg/"
    with pytest.raises(ValueError, match="DISCORD_GATEWAY_URL"):
        configure_endpoints(None, "http://not-a-websocket")
    with pytest.raises(ValueError, match="DISCORD_API_URL"):
        configure_endpoints("ftp://x", None)


T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def _tracker() -> PresenceTracker:
    tracker = PresenceTracker(min_minutes=10)
    tracker.track(TrackedSession("ev1", "g", "voice", T0, T0 + timedelta(hours=1)))
    return tracker


def test_presence_counts_only_inside_the_window_and_reports_once() -> None:
    tracker = _tracker()
    tracker.moved("g", "u1", "voice", T0 - timedelta(minutes=20), "Ana")
    assert tracker.due(T0 + timedelta(minutes=9)) == []
    (p,) = tracker.due(T0 + timedelta(minutes=10))
    assert (p.ref, p.user_id, p.name, p.minutes) == ("ev1", "u1", "Ana", 10.0)
    assert tracker.due(T0 + timedelta(minutes=50)) == []


def test_presence_adds_up_separate_stints_and_ignores_other_channels() -> None:
    tracker = _tracker()
    tracker.moved("g", "u2", "voice", T0, "Bo")
    tracker.moved("g", "u2", "elsewhere", T0 + timedelta(minutes=6))
    tracker.moved("g", "u2", "voice", T0 + timedelta(minutes=30))
    tracker.moved("g", "u2", None, T0 + timedelta(minutes=33))
    assert tracker.due(T0 + timedelta(minutes=40)) == []
    assert tracker.minutes("ev1", "u2", T0 + timedelta(minutes=40)) == 9.0
    tracker.moved("g", "u2", "voice", T0 + timedelta(minutes=55))
    (p,) = tracker.due(T0 + timedelta(hours=2))
    assert p.minutes == 14.0  # 6 + 3 + the last 5 minutes before the end


def test_presence_forgets_old_sessions() -> None:
    tracker = _tracker()
    tracker.prune(T0 + timedelta(days=3))
    assert tracker.sessions == {}
