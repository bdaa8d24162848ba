"""Rendering Messages to Block Kit, converting Slack payloads to events, and the app manifest."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from bot.adapters.slack import convert
from bot.adapters.slack.manifest import BOT_EVENTS, BOT_SCOPES, manifest, manifest_text
from bot.adapters.slack.pacing import Pacer, SeenKeys
from bot.adapters.slack.render import (
    DELIVERY_EVENT_TYPE,
    escape,
    markdown_to_mrkdwn,
    render_home,
    render_message,
    render_modal,
    render_single,
    slack_text_to_plain,
    split_mrkdwn,
)
from bot.events import ButtonPressed, CommandInvoked, ModalSubmitted, ThreadReply
from bot.messages import Button, Field, Message, Modal
from tests.fakes import slack_signing
from tests.fakes.slack_api import block_problems, view_problems

pytestmark = pytest.mark.slack

HOSTILE = "<!channel> & @here <@U1> <!here|here> <#C1> <!subteam^S1>"


def mrkdwn_texts(value: Any) -> list[str]:
    """Every mrkdwn string inside a Block Kit structure."""
    found: list[str] = []
    if isinstance(value, dict):
        if value.get("type") == "mrkdwn" and isinstance(value.get("text"), str):
            found.append(value["text"])
        for item in value.values():
            found += mrkdwn_texts(item)
    elif isinstance(value, list):
        for item in value:
            found += mrkdwn_texts(item)
    return found


def assert_no_mentions(text: str) -> None:
    # Slack only parses mentions inside <...>; with <, > and & escaped none can form.
    assert "<!" not in text and "<@" not in text and "<#" not in text, text


# ------------------------------------------------------------------------------------------------------- escaping


def test_learner_text_cannot_produce_a_mention_anywhere() -> None:
    message = Message(
        text=HOSTILE,
        title=HOSTILE,
        body=f"{HOSTILE}\n\n- {HOSTILE}\n\n**{HOSTILE}** [{HOSTILE}](https://example.com/?a=1&b=<2>)",
        fields=[Field(HOSTILE, HOSTILE)],
        buttons=[Button("Done", "lesson.done", "1")],
        context=HOSTILE,
    )
    [rendered] = render_message(message)
    assert_no_mentions(rendered.text)
    texts = mrkdwn_texts(rendered.blocks)
    assert len(texts) == 3  # body, fields, context
    for text in texts:
        assert_no_mentions(text)
    assert "&lt;!channel&gt; &amp; @here &lt;@U1&gt;" in texts[0]
    # The only <...> we emit is our own link, with the URL's specials escaped too.
    assert "<https://example.com/?a=1&amp;b=&lt;2&gt;|&lt;!channel&gt;" in texts[0]
    # No parse/link_names options that would turn a bare @here into a mention.
    assert "link_names" not in rendered.api_kwargs() and "parse" not in rendered.api_kwargs()


def test_header_and_buttons_are_plain_text_which_slack_never_parses() -> None:
    [rendered] = render_message(
        Message(text="t", title="<!channel> Q&A", buttons=[Button("<@U1>", "x", "1")])
    )
    header = rendered.blocks[0]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "<!channel> Q&A", "emoji": True},
    }
    button = rendered.blocks[-1]["elements"][0]
    assert button["text"]["type"] == "plain_text"


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("**bold** and _italic_", "*bold* and _italic_"),
        ("*also italic* and ~~gone~~", "_also italic_ and ~gone~"),
        ("[Docs](https://docs.example.com/a_b?x=1&y=2)", "<https://docs.example.com/a_b?x=1&amp;y=2|Docs>"),
        ("[evil](javascript:alert(1))", "[evil](javascript:alert(1))"),
        ("[pipe](https://x.test/a|b)", "<https://x.test/a%7Cb|pipe>"),
        ("- one\n- two\n  - nested", "• one\n• two\n    ◦ nested"),
        ("## Heading", "*Heading*"),
        ("`**not bold** <b>`", "`**not bold** &lt;b&gt;`"),
        ("2*3*4 stays", "2*3*4 stays"),
        ("```\n<x> & **y**\n```", "```\n&lt;x&gt; &amp; **y**\n```"),
    ],
)
def test_markdown_subset_to_mrkdwn(markdown: str, expected: str) -> None:
    assert markdown_to_mrkdwn(markdown) == expected


def test_fallback_text_is_converted_and_escaped_too() -> None:
    [rendered] = render_message(
        Message(text="**Help** for /learn: see [docs](https://docs.test) <!here>", body="x")
    )
    assert rendered.text == "*Help* for /learn: see <https://docs.test|docs> &lt;!here&gt;"
    [no_text] = render_message(Message(text="", title="Kick-off & agenda"))
    assert no_text.text == "Kick-off &amp; agenda"


def test_escape_only_touches_the_three_control_characters() -> None:
    assert escape("a & b < c > d \"e\" 'f'") == "a &amp; b &lt; c &gt; d \"e\" 'f'"


def test_slack_text_back_to_plain() -> None:
    raw = "hi <@U1|ann> <@U2> in <#C1|general> <!here> see <https://a.test|A> <https://b.test> 1 &lt; 2 &amp;&amp; 3 &gt; 2"
    assert (
        slack_text_to_plain(raw)
        == "hi @ann @U2 in #general @here see [A](https://a.test) https://b.test 1 < 2 && 3 > 2"
    )


# ------------------------------------------------------------------------------------------------------- splitting


def test_long_body_is_split_into_sections_within_limits() -> None:
    paragraphs = [f"Paragraph {i}: " + "word " * 60 for i in range(40)]  # ~12,000 characters
    body = "\n\n".join(paragraphs)
    assert len(body) > 10_000
    [rendered] = render_message(
        Message(text="Lesson", title="Lesson", body=body, buttons=[Button("Done", "d", "1")])
    )
    sections = [b for b in rendered.blocks if b["type"] == "section"]
    assert len(sections) >= 4
    assert all(len(s["text"]["text"]) <= 3000 for s in sections)
    assert len(rendered.blocks) <= 50
    assert block_problems(rendered.blocks) == []
    # Split at paragraph boundaries: every paragraph survives whole, in order.
    joined = "\n\n".join(s["text"]["text"] for s in sections)
    assert joined == markdown_to_mrkdwn(body)


def test_a_single_huge_paragraph_is_split_at_words_without_breaking_entities_or_links() -> None:
    body = ("fish &amp; chips " * 400) + "[link](https://example.com/very/long) " + ("tail " * 500)
    chunks = split_mrkdwn(markdown_to_mrkdwn(body))
    assert all(len(c) <= 3000 for c in chunks)
    assert len(chunks) >= 3
    for chunk in chunks:
        assert not re.search(r"&[a-z]*$", chunk)  # no entity cut in half
        assert chunk.count("<") == chunk.count(">")
    assert "<https://example.com/very/long|link>" in "".join(chunks)


def test_more_than_fifty_blocks_become_several_messages_with_buttons_last() -> None:
    body = "\n\n".join("x" * 2900 for _ in range(120))
    message = Message(
        text="Big lesson",
        title="Big lesson",
        body=body,
        buttons=[Button("Done", "lesson.done", "9", "primary")],
        fields=[Field("Due", "today")],
        context="Program",
        delivery_id=77,
    )
    parts = render_message(message)
    assert len(parts) == 3
    for number, part in enumerate(parts, start=1):
        assert len(part.blocks) <= 50
        assert block_problems(part.blocks) == []
        assert part.metadata == {
            "event_type": DELIVERY_EVENT_TYPE,
            "event_payload": {"delivery_id": 77, "page": number, "pages": 3},
        }
    assert parts[0].blocks[0]["type"] == "header"
    assert [b["type"] for b in parts[-1].blocks[-3:]] == ["section", "actions", "context"]
    assert all(b["type"] == "section" for p in parts[:-1] for b in p.blocks[1 if p is parts[0] else 0 :])
    assert "continued, 2/3" in parts[1].text
    sections = sum(1 for p in parts for b in p.blocks if b["type"] == "section" and "text" in b)
    assert sections == 120

    single = render_single(message)
    assert len(single.blocks) <= 50 and single.blocks[-1]["type"] == "context"


# ------------------------------------------------------------------------------------------------------- layout


def test_lesson_card_layout() -> None:
    message = Message(
        text="New lesson: Feedback that lands",
        title="Feedback that lands",
        body="Read this **today**.",
        fields=[Field("Time", "5 min"), Field("Due", "Fri 12 Jun")],
        buttons=[
            Button("Done", "lesson.done", "42", "primary"),
            Button("Snooze 2h", "step.snooze", "42"),
            Button("Remind me tomorrow", "step.tomorrow", "42"),
        ],
        context="Manager Essentials · week 1",
        delivery_id=5,
        kind="lesson",
    )
    [rendered] = render_message(message)
    assert [b["type"] for b in rendered.blocks] == ["header", "section", "section", "actions", "context"]
    assert rendered.text == "New lesson: Feedback that lands"
    assert rendered.blocks[2]["fields"][0] == {"type": "mrkdwn", "text": "*Time*\n5 min"}
    done, snooze, tomorrow = rendered.blocks[3]["elements"]
    assert done == {
        "type": "button",
        "text": {"type": "plain_text", "text": "Done", "emoji": True},
        "action_id": "bw:lesson.done:42",
        "value": "42",
        "style": "primary",
    }
    assert "style" not in snooze and "style" not in tomorrow
    assert rendered.metadata == {"event_type": "blendwise_delivery", "event_payload": {"delivery_id": 5}}
    assert block_problems(rendered.blocks) == []


def test_first_button_is_primary_unless_the_choices_are_equal() -> None:
    buttons = [Button("Going", "rsvp.yes", "1"), Button("Maybe", "rsvp.maybe", "1")]
    [invite] = render_message(Message(text="t", buttons=buttons, kind="session"))
    assert invite.blocks[-1]["elements"][0]["style"] == "primary"
    answers = [Button("Paris", "quiz.answer", "1.0"), Button("Lyon", "quiz.answer", "1.1")]
    [quiz] = render_message(Message(text="t", buttons=answers, kind="quiz"))
    assert all("style" not in e for e in quiz.blocks[-1]["elements"])


def test_a_join_button_is_a_link_that_slack_opens_and_the_bot_does_not_handle() -> None:
    buttons = [Button("Going", "rsvp.yes", "6"), Button("Join", "session.join", "6", url="https://meet.example.com/x")]
    buttons.append(Button("Not a web link", "session.join", "7", url="javascript:alert(1)"))
    [invite] = render_message(Message(text="t", buttons=buttons, kind="session"))
    going, join, other = invite.blocks[-1]["elements"]
    assert join["url"] == "https://meet.example.com/x" and "url" not in going and "url" not in other
    # Slack reports a press on a link button too; its id is not ours, so no reply duplicates the link.
    assert convert.parse_action_id(join["action_id"], join.get("value")) is None
    assert convert.parse_action_id(other["action_id"], other.get("value")) == ("session.join", "7")
    assert block_problems(invite.blocks) == []


def test_action_ids_stay_unique_and_long_values_still_route() -> None:
    long_value = "v" * 400
    buttons = [
        Button("A", "quiz.answer", "1"),
        Button("A again", "quiz.answer", "1"),
        Button("Long", "x", long_value),
    ]
    buttons += [Button(f"B{i}", "poll.step", str(i)) for i in range(30)]
    [rendered] = render_message(Message(text="t", buttons=buttons, kind="poll"))
    elements = [e for b in rendered.blocks if b["type"] == "actions" for e in b["elements"]]
    ids = [e["action_id"] for e in elements]
    assert len(ids) == len(set(ids)) == 33
    assert all(len(i) <= 255 for i in ids)
    assert [len(b["elements"]) for b in rendered.blocks if b["type"] == "actions"] == [25, 8]
    assert block_problems(rendered.blocks) == []
    assert convert.parse_action_id(ids[1], elements[1]["value"]) == ("quiz.answer", "1")
    assert convert.parse_action_id(ids[2], elements[2]["value"]) == ("x", long_value)


def test_home_view_and_modal() -> None:
    home = render_home(
        Message(
            text="Home",
            title="Your learning",
            body="- Lesson 3 due\n- Session Tue",
            buttons=[Button("Next", "n", "1")],
        )
    )
    assert home["type"] == "home" and view_problems(home) == []
    modal = Modal(
        title="A rather long reflection title",
        label="What will you try?",
        action="reflection.submit",
        value="42",
    )
    view = render_modal(modal, {"channel": "D1", "ts": "1.2"})
    assert view_problems(view) == []
    assert len(view["title"]["text"]) <= 24
    assert json.loads(view["private_metadata"]) == {
        "action": "reflection.submit",
        "value": "42",
        "channel": "D1",
        "ts": "1.2",
    }
    [block] = view["blocks"]
    assert block["element"]["type"] == "plain_text_input" and block["element"]["multiline"] is True


# ------------------------------------------------------------------------------------------------------- convert


def test_block_actions_to_button_pressed() -> None:
    payload = slack_signing.block_actions_payload(
        user_id="U42",
        action_id="bw:quiz.answer:7.1.0#2",
        value="7.1.0",
        channel_id="D9",
        message_ts="1.5",
        action_ts="99.1",
    )
    [(event, target)] = convert.button_pressed(payload)
    assert isinstance(event, ButtonPressed)
    assert (event.action, event.value) == ("quiz.answer", "7.1.0")
    assert event.actor.workspace == slack_signing.TEAM_ID and event.actor.user_id == "U42"
    assert event.message is not None and (event.message.channel, event.message.ts) == ("D9", "1.5")
    assert event.dedupe_key and "99.1" in event.dedupe_key
    assert target.response_url and target.trigger_id and target.channel == "D9"
    # The same payload replayed gives the same dedupe_key; a different click does not.
    [(again, _)] = convert.button_pressed(json.loads(json.dumps(payload)))
    assert again.dedupe_key == event.dedupe_key
    other = slack_signing.block_actions_payload(
        user_id="U42", action_id="bw:quiz.answer:7.1.0", value="7.1.0", action_ts="99.2"
    )
    assert convert.button_pressed(other)[0][0].dedupe_key != event.dedupe_key


def test_foreign_action_ids_are_ignored() -> None:
    payload = slack_signing.block_actions_payload(user_id="U1", action_id="open_link", value="x")
    assert convert.button_pressed(payload) == []
    assert convert.parse_action_id("bw:", None) is None
    assert convert.parse_action_id("bw:done:5", None) == ("done", "5")


def test_view_submission_to_modal_submitted() -> None:
    metadata = json.dumps({"action": "reflection.submit", "value": "42", "channel": "D1", "ts": "3.4"})
    payload = slack_signing.view_submission_payload(
        user_id="U7", private_metadata=metadata, text="I will listen more.", view_id="V9"
    )
    converted = convert.modal_submitted(payload)
    assert converted is not None
    event, target = converted
    assert isinstance(event, ModalSubmitted)
    assert (event.action, event.value, event.text) == ("reflection.submit", "42", "I will listen more.")
    assert event.dedupe_key == f"slack:view:{slack_signing.TEAM_ID}:V9"
    assert (target.channel, target.message_ts) == ("D1", "3.4")
    foreign = slack_signing.view_submission_payload(
        user_id="U7", private_metadata="{}", text="x", callback_id="other"
    )
    assert convert.modal_submitted(foreign) is None


def test_thread_replies_only_from_people() -> None:
    def reply(**extra: Any) -> dict[str, Any]:
        event = slack_signing.message_event(
            user="U5", channel="C1", text="I agree &lt;3 <@U9|bo>", thread_ts="100.1", **extra
        )
        return slack_signing.event_callback(event)

    converted = convert.thread_reply(reply())
    assert converted is not None
    event, target = converted
    assert isinstance(event, ThreadReply)
    assert (event.channel, event.thread, event.text) == ("C1", "100.1", "I agree <3 @bo")
    assert event.actor.user_id == "U5" and event.message_id and target.thread_ts == "100.1"
    assert convert.thread_reply(reply(subtype="thread_broadcast")) is not None
    assert convert.thread_reply(reply(bot_id="B1")) is None
    assert convert.thread_reply(reply(subtype="message_changed")) is None
    top_level = slack_signing.event_callback(slack_signing.message_event(user="U5", channel="C1", text="hi"))
    assert convert.thread_reply(top_level) is None
    parent = slack_signing.event_callback(
        slack_signing.message_event(user="U5", channel="C1", text="hi", ts="5.5", thread_ts="5.5")
    )
    assert convert.thread_reply(parent) is None


def test_slash_command_args_and_mentions() -> None:
    form = slack_signing.slash_command_form(
        user_id="U1", text="enroll  cohort-a <@U111|alice> <@W222> <@U111|alice> &amp; co"
    )
    converted = convert.command_invoked(dict(form))
    assert converted is not None
    event, target = converted
    assert isinstance(event, CommandInvoked)
    assert event.args == "enroll cohort-a @alice @W222 @alice & co"
    assert event.mentioned_users == ("U111", "W222")
    assert event.channel == "C0COHORT01" and target.response_url


@pytest.mark.parametrize(
    "body",
    [
        {"type": "event_callback", "team_id": "T1", "event_id": "Ev1"},
        {"type": "event_callback", "team_id": "T1", "event": {"type": "message"}},
        {"type": "block_actions", "user": {"id": "U1"}, "actions": []},
        {"type": "block_actions", "actions": [{"action_id": "x"}]},
        {"type": "view_submission", "user": {"id": "U1"}, "view": {"id": "V1"}},
        {"command": "learn", "user_id": "U1", "team_id": "T1"},
        {"text": "no type at all"},
    ],
)
def test_unroutable_payloads_are_named(body: dict[str, Any]) -> None:
    assert convert.problem_with(body) is not None


# ------------------------------------------------------------------------------------------------------- pacing


def test_pacer_spaces_posts_per_channel_and_per_workspace() -> None:
    now = [100.0]
    pacer = Pacer(per_channel_interval=1.0, workspace_rate=4.0, monotonic=lambda: now[0])
    assert pacer.reserve("T", "C1") == 0.0
    assert pacer.reserve("T", "C1") == pytest.approx(1.0)  # same channel: one per second
    # Workspace budget 4/s: C2 fits between C1's two slots instead of queueing behind C1's channel interval.
    assert pacer.reserve("T", "C2") == pytest.approx(0.25)
    assert pacer.reserve("T", "C3") == pytest.approx(0.5)
    assert pacer.reserve("T2", "C1") == 0.0  # other workspace, independent
    now[0] += 10
    assert pacer.reserve("T", "C1") == 0.0
    pacer.defer("T", "C1", 30)
    assert pacer.reserve("T", "C1") == pytest.approx(30.0)


def test_seen_keys_forget_after_ttl() -> None:
    now = [0.0]
    seen = SeenKeys(ttl=60, monotonic=lambda: now[0])
    assert seen.first_time("a") and not seen.first_time("a")
    assert seen.first_time(None) and seen.first_time(None)
    now[0] = 61
    assert seen.first_time("a")


# ------------------------------------------------------------------------------------------------------- manifest


def test_manifest_is_a_ready_slack_app() -> None:
    data = manifest()
    assert tuple(data["oauth_config"]["scopes"]["bot"]) == BOT_SCOPES
    assert tuple(data["settings"]["event_subscriptions"]["bot_events"]) == BOT_EVENTS
    assert data["settings"]["interactivity"]["is_enabled"] is True
    assert data["features"]["app_home"]["home_tab_enabled"] is True
    [command] = data["features"]["slash_commands"]
    assert command["command"] == "/learn" and command["should_escape"] is True
    assert (
        command["url"]
        == data["settings"]["event_subscriptions"]["request_url"]
        == "https://YOUR-HOST/slack/events"
    )
    text = manifest_text("https://bot.example.com/", socket_mode=True)
    assert "YOUR-HOST" not in text and "https://bot.example.com/slack/events" in text
    assert manifest("bot.example.com", socket_mode=True)["settings"]["socket_mode_enabled"] is True
    with pytest.raises(ValueError):
        manifest_text("bad host/with spaces")
