"""Outbound delivery against the fake Slack Web API: DMs, channels, files, reconciliation, pacing, errors."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator

import pytest

from bot.adapters.slack.adapter import SlackAdapter
from bot.errors import AdapterError
from bot.messages import Attachment, Button, Field, Message, MessageRef
from bot.ports import Adapter, Recipient
from tests.adapters.slack.harness import RecordingHandler, make_adapter
from tests.fakes.slack_api import FakeSlack

pytestmark = pytest.mark.slack

ICS = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nSUMMARY:Kick-off\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"


@pytest.fixture
def adapter(fake_slack: FakeSlack) -> Iterator[SlackAdapter]:
    """An adapter used only for sending (not started: the outbox may send before or without serving HTTP)."""
    yield make_adapter(fake_slack)


def to(fake: FakeSlack, user_id: str) -> Recipient:
    return Recipient("slack", fake.team_id, user_id, name="Ann", tz="Europe/Berlin")


def lesson(delivery_id: int | None = 11, **extra: object) -> Message:
    return Message(
        text="New lesson: Feedback that lands",
        title="Feedback that lands",
        body="Good feedback is **specific** and _timely_.\n\n- Say what you saw\n- Say the impact",
        fields=[Field("Time", "5 min")],
        buttons=[Button("Done", "lesson.done", "42", "primary"), Button("Snooze 2h", "step.snooze", "42")],
        context="Manager Essentials · week 1",
        delivery_id=delivery_id,
        kind="lesson",
        **extra,  # type: ignore[arg-type]
    )


def test_the_adapter_satisfies_the_protocol(adapter: SlackAdapter) -> None:
    assert isinstance(adapter, Adapter)
    assert adapter.platform == "slack"


def test_send_direct_opens_the_dm_and_posts_blocks_text_and_metadata(
    adapter: SlackAdapter, fake_slack: FakeSlack
) -> None:
    ref = adapter.send_direct(to(fake_slack, "U100"), lesson())

    [opened] = fake_slack.calls("conversations.open")
    assert opened.params["users"] == "U100"
    [post] = fake_slack.calls("chat.postMessage")
    assert post.status == 200
    assert post.params["channel"] == ref.channel == fake_slack.dm_channel("U100")
    assert post.params["text"] == "New lesson: Feedback that lands"
    assert [b["type"] for b in post.params["blocks"]] == [
        "header",
        "section",
        "section",
        "actions",
        "context",
    ]
    assert post.params["metadata"] == {
        "event_type": "blendwise_delivery",
        "event_payload": {"delivery_id": 11},
    }
    assert post.params["unfurl_links"] is False
    assert "authorization" not in {k.lower() for k in post.headers}  # the fake never records tokens
    assert post.team == fake_slack.team_id
    assert ref == MessageRef("slack", ref.channel, post_ts(fake_slack, ref.channel))

    adapter.send_direct(to(fake_slack, "U100"), lesson(delivery_id=12))
    assert len(fake_slack.calls("conversations.open")) == 1  # the DM channel is cached


def post_ts(fake: FakeSlack, channel: str) -> str:
    return str(fake.messages_in(channel)[-1]["ts"])


def test_ics_invites_are_uploaded_with_files_upload_v2_to_the_dm(
    adapter: SlackAdapter, fake_slack: FakeSlack
) -> None:
    invite = Message(
        text="You're invited: Kick-off",
        title="Kick-off",
        body="Agenda ...",
        buttons=[Button("Going", "rsvp.yes", "7", "primary"), Button("Maybe", "rsvp.maybe", "7")],
        attachments=[Attachment("kick-off.ics", ICS, "text/calendar", title="Add to calendar")],
        delivery_id=3,
        kind="session",
    )
    ref = adapter.send_direct(to(fake_slack, "U200"), invite)

    [url_call] = fake_slack.calls("files.getUploadURLExternal")
    assert url_call.params["filename"] == "kick-off.ics" and int(url_call.params["length"]) == len(ICS)
    [complete] = fake_slack.calls("files.completeUploadExternal")
    assert complete.params["channel_id"] == ref.channel
    assert complete.json_param("files")[0]["title"] == "Add to calendar"
    [upload] = fake_slack.uploads()
    assert upload["content"] == ICS and upload["channel"] == ref.channel
    # The card comes first, then the file; the returned ref is the card (it is what RSVP buttons update).
    methods = [c.method for c in fake_slack.calls() if c.method not in ("auth.test",)]
    assert methods.index("chat.postMessage") < methods.index("files.completeUploadExternal")
    assert fake_slack.messages_in(ref.channel)[0]["ts"] == ref.ts


def test_images_get_alt_text(adapter: SlackAdapter, fake_slack: FakeSlack) -> None:
    chart = Attachment("progress.png", b"\x89PNG fake", "image/png", title="Team progress, week 3")
    adapter.send_direct(to(fake_slack, "U250"), Message(text="Your team this week", attachments=[chart]))
    [url_call] = fake_slack.calls("files.getUploadURLExternal")
    assert url_call.params["alt_txt"] == "Team progress, week 3"


def test_find_delivery_reconciles_an_unknown_outcome(adapter: SlackAdapter, fake_slack: FakeSlack) -> None:
    ann = to(fake_slack, "U300")
    assert adapter.find_delivery(ann, 21) is None
    ref = adapter.send_direct(ann, lesson(delivery_id=21))
    adapter.send_direct(ann, lesson(delivery_id=22))

    assert adapter.find_delivery(ann, 21) == ref
    assert adapter.find_delivery(ann, 23) is None
    [history] = fake_slack.calls("conversations.history")[-1:]
    assert history.params["include_all_metadata"] in ("1", "true", True)


def test_send_channel_and_thread_and_update(adapter: SlackAdapter, fake_slack: FakeSlack) -> None:
    parent = adapter.send_channel(
        fake_slack.team_id, "C0COHORT01", Message(text="Prompt", title="This week's prompt")
    )
    reply = adapter.send_channel(fake_slack.team_id, "C0COHORT01", Message(text="Recap"), thread=parent.ts)
    [first, second] = fake_slack.calls("chat.postMessage")
    assert "thread_ts" not in first.params and second.params["thread_ts"] == parent.ts
    assert reply.channel == "C0COHORT01"

    adapter.update(parent, Message(text="Prompt (closed)", title="This week's prompt", context="Closed"))
    [update] = fake_slack.calls("chat.update")
    assert (update.params["channel"], update.params["ts"]) == ("C0COHORT01", parent.ts)
    assert update.params["blocks"][-1]["type"] == "context"


def test_a_very_long_lesson_is_sent_as_several_messages(adapter: SlackAdapter, fake_slack: FakeSlack) -> None:
    body = "\n\n".join(f"Part {i}. " + "x" * 2800 for i in range(60))
    ref = adapter.send_direct(
        to(fake_slack, "U350"), Message(text="Long", title="Long", body=body, delivery_id=31)
    )
    posts = fake_slack.calls("chat.postMessage")
    assert len(posts) == 2 and all(p.status == 200 for p in posts)
    assert ref.ts == post_ts(fake_slack, ref.channel)  # the last part: the one with buttons and footer
    assert adapter.find_delivery(to(fake_slack, "U350"), 31) == ref


def test_profile_comes_from_users_info(adapter: SlackAdapter, fake_slack: FakeSlack) -> None:
    fake_slack.add_user(
        "U400",
        "ann",
        real_name="Ann Example",
        display_name="ann.e",
        tz="Europe/Berlin",
        email="ann@example.com",
    )
    profile = adapter.profile(fake_slack.team_id, "U400")
    assert profile is not None
    assert (profile.name, profile.tz, profile.email) == ("ann.e", "Europe/Berlin", "ann@example.com")
    fake_slack.fail_next("users.info", error="user_not_found")
    assert adapter.profile(fake_slack.team_id, "U404") is None


# ------------------------------------------------------------------------------------------------------- pacing


def test_two_posts_to_one_channel_are_about_a_second_apart(fake_slack: FakeSlack) -> None:
    adapter = make_adapter(fake_slack, per_channel_interval=1.0)
    adapter.send_direct(to(fake_slack, "U500"), lesson(delivery_id=41))
    adapter.send_direct(to(fake_slack, "U500"), lesson(delivery_id=42))
    adapter.send_direct(to(fake_slack, "U501"), lesson(delivery_id=43))  # another channel: not held back
    first, second, other = fake_slack.calls("chat.postMessage")
    assert second.at - first.at >= 0.9, "Slack allows about one post per second per channel"
    assert other.at - second.at < 0.9


def test_the_workspace_rate_spaces_posts_across_channels(fake_slack: FakeSlack) -> None:
    adapter = make_adapter(fake_slack, workspace_rate=4.0)
    for i in range(3):
        adapter.send_channel(fake_slack.team_id, f"C0000000{i}", Message(text=f"post {i}"))
    posts = fake_slack.calls("chat.postMessage")
    gaps = [b.at - a.at for a, b in itertools.pairwise(posts)]
    assert all(gap >= 0.2 for gap in gaps), gaps  # 4/s -> 0.25 s apart


# ------------------------------------------------------------------------------------------------------- errors


def test_a_long_429_becomes_an_adapter_error_with_retry_after(
    adapter: SlackAdapter, fake_slack: FakeSlack
) -> None:
    fake_slack.rate_limit("chat.postMessage", retry_after=30)
    with pytest.raises(AdapterError) as err:
        adapter.send_direct(to(fake_slack, "U600"), lesson())
    assert err.value.retryable is True
    assert err.value.retry_after == 30
    assert "ratelimited" in str(err.value)
    assert len(fake_slack.calls("chat.postMessage")) == 1  # not retried in place: the outbox waits instead


def test_a_short_429_is_retried_in_place(fake_slack: FakeSlack) -> None:
    adapter = make_adapter(fake_slack, max_retry_wait=1.0)
    fake_slack.rate_limit("chat.postMessage", retry_after=0)
    ref = adapter.send_direct(to(fake_slack, "U601"), lesson())
    statuses = [c.status for c in fake_slack.calls("chat.postMessage")]
    assert statuses == [429, 200]
    assert ref.ts == post_ts(fake_slack, ref.channel)


def test_server_errors_are_retried_then_reported_as_retryable(fake_slack: FakeSlack) -> None:
    adapter = make_adapter(fake_slack, server_error_retries=1)
    fake_slack.server_error("users.info", times=2)
    with pytest.raises(AdapterError) as err:
        adapter.profile(fake_slack.team_id, "U700")
    assert err.value.retryable is True and err.value.retry_after is None
    assert [c.status for c in fake_slack.calls("users.info")] == [500, 500]


def test_a_post_is_never_retried_blindly_after_a_server_error(fake_slack: FakeSlack) -> None:
    """Slack may store a message and still answer 5xx: re-posting would duplicate it, so the adapter reports a
    retryable error after one call and the outbox reconciles (``find_delivery``) before trying again."""
    adapter = make_adapter(fake_slack, server_error_retries=2)
    fake_slack.server_error("chat.postMessage", times=1)
    with pytest.raises(AdapterError) as err:
        adapter.send_direct(to(fake_slack, "U700"), lesson())
    assert err.value.retryable is True and err.value.retry_after is None
    assert [c.status for c in fake_slack.calls("chat.postMessage")] == [500]


@pytest.mark.parametrize("error", ["channel_not_found", "invalid_auth", "not_in_channel", "invalid_blocks"])
def test_permanent_errors_are_not_retryable(adapter: SlackAdapter, fake_slack: FakeSlack, error: str) -> None:
    fake_slack.fail_next("chat.postMessage", error=error)
    with pytest.raises(AdapterError) as err:
        adapter.send_channel(fake_slack.team_id, "C0GONE0001", Message(text="hello"))
    assert err.value.retryable is False
    assert error in str(err.value)
    assert fake_slack.token not in str(err.value)


def test_a_wrong_token_fails_start_without_leaking_it(fake_slack: FakeSlack) -> None:
    adapter = make_adapter(fake_slack, bot_token="xoxb-wrong-and-secret")
    with pytest.raises(AdapterError) as err:
        adapter.start(RecordingHandler())
    assert err.value.retryable is False and "invalid_auth" in str(err.value)
    assert "xoxb-wrong-and-secret" not in str(err.value)


def test_an_unreachable_api_is_retryable(fake_slack: FakeSlack) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    adapter = make_adapter(fake_slack, api_url=f"http://127.0.0.1:{closed_port}/api/", server_error_retries=0)
    with pytest.raises(AdapterError) as err:
        adapter.send_channel("T1", "C1", Message(text="hello"))
    assert err.value.retryable is True
    assert "could not reach" in str(err.value)
