"""Real signed HTTP requests to the adapter's bolt endpoint, with a recording handler behind it."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from bot.events import ButtonPressed, CommandInvoked, InboundEvent, ModalSubmitted, Response, ThreadReply
from bot.messages import Button, Message, Modal
from tests.adapters.slack.harness import SECRET, SlackHarness
from tests.fakes import slack_signing
from tests.fakes.slack_signing import SignedRequest, sign

pytestmark = pytest.mark.slack


def click(
    slack: SlackHarness, action_id: str = "bw:lesson.done:42", value: str | None = "42", **kwargs: Any
) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "user_id": "U100",
        "action_id": action_id,
        "value": value,
        "channel_id": "D0LEARNER1",
        "message_ts": "1700000000.000100",
        "response_url": slack.fake.response_url("click"),
    }
    defaults.update(kwargs)
    return slack_signing.block_actions_payload(**defaults)


# ------------------------------------------------------------------------------------------------------- security


def test_requests_without_a_valid_signature_are_rejected(slack: SlackHarness) -> None:
    payload = click(slack)
    signed = slack_signing.interaction_request(SECRET, payload)

    unsigned = SignedRequest(signed.body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert slack.post(unsigned).status == 401

    wrong_secret = slack_signing.interaction_request("not-the-secret", payload)
    assert slack.post(wrong_secret).status == 401

    tampered = SignedRequest(signed.body.replace("U100", "U666"), signed.headers)
    assert slack.post(tampered).status == 401

    stale = slack_signing.interaction_request(SECRET, payload, timestamp=int(time.time()) - 6 * 60)
    assert slack.post(stale).status == 401

    garbage_ts = SignedRequest(signed.body, {**signed.headers, "X-Slack-Request-Timestamp": "yesterday"})
    assert slack.post(garbage_ts).status == 401

    assert slack.handler.events == []
    assert slack.post(signed).status == 200  # the genuine request still works
    assert len(slack.handler.wait_for(1)) == 1


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("payload=%7Bnot-json", "application/x-www-form-urlencoded"),
        ("payload=%5B1%2C2%5D", "application/x-www-form-urlencoded"),
        ('{"type": "event_callback", "team_id": "T1"}', "application/json"),
        (
            '{"type": "event_callback", "event_id": "Ev1", "team_id": "T1", "event": "message"}',
            "application/json",
        ),
        ("{truncated", "application/json"),
        (
            'payload={"type":"block_actions","user":{"id":"U1"},"actions":[]}',
            "application/x-www-form-urlencoded",
        ),
        (
            'payload={"type":"view_submission","user":{"id":"U1"},"view":{}}',
            "application/x-www-form-urlencoded",
        ),
        ("command=%2Flearn&text=help", "application/x-www-form-urlencoded"),
        ("just some words", "text/plain"),
        ("", "application/json"),
    ],
)
def test_signed_but_malformed_payloads_get_a_4xx_not_a_crash(
    slack: SlackHarness, body: str, content_type: str
) -> None:
    result = slack.post(sign(SECRET, body, content_type))
    assert 400 <= result.status < 500, result
    assert "Traceback" not in result.body
    health = urllib.request.urlopen(f"{slack.adapter.url}/healthz", timeout=5)
    assert health.status == 200 and json.loads(health.read())["ok"] is True


def test_healthz_and_unknown_paths(slack: SlackHarness) -> None:
    with urllib.request.urlopen(f"{slack.adapter.url}/healthz", timeout=5) as resp:
        assert resp.status == 200
    for path, method in (("/nope", "GET"), ("/slack/events", "GET")):
        req = urllib.request.Request(f"{slack.adapter.url}{path}", method=method)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=5)
        assert err.value.code in (404, 405)


def test_url_verification_challenge(slack: SlackHarness) -> None:
    result = slack.post_event({"token": "x", "challenge": "c-123", "type": "url_verification"})
    assert result.status == 200 and "c-123" in result.body


# ------------------------------------------------------------------------------------------------------- buttons


def test_button_press_is_handled_once_and_answered(slack: SlackHarness) -> None:
    def respond(event: InboundEvent) -> Response:
        if not isinstance(event, ButtonPressed) or event.action != "lesson.done":
            return Response()
        return Response(
            replace=Message(text="Done!", title="Feedback that lands", body="✅ Marked as done."),
            ephemeral=Message(text="Nice work — 3 lessons to go.", body="Nice work — 3 lessons to go."),
        )

    slack.handler.respond = respond
    ref = slack.adapter.send_direct(
        slack.recipient("U100"),
        Message(text="Lesson", title="Lesson", buttons=[Button("Done", "lesson.done", "42")]),
    )
    payload = click(slack, channel_id=ref.channel, message_ts=ref.ts)

    first = slack.post_interaction(payload)
    replay = slack.post_interaction(payload)  # a double-delivered request: same payload, same dedupe_key
    marker = slack.post_interaction(click(slack, action_id="bw:marker:1", value="1"))
    assert (first.status, replay.status, marker.status) == (200, 200, 200)

    event, after = slack.handler.wait_for(2)
    assert (
        isinstance(after, ButtonPressed) and after.action == "marker"
    )  # the replay was dropped, not dispatched
    assert isinstance(event, ButtonPressed)
    assert (event.action, event.value, event.actor.user_id) == ("lesson.done", "42", "U100")
    assert event.actor.workspace == slack_signing.TEAM_ID
    assert event.message is not None and event.message.ts == ref.ts
    assert event.dedupe_key is not None

    [update] = slack.fake.wait_for("chat.update")
    assert (update.params["channel"], update.params["ts"]) == (ref.channel, ref.ts)
    assert update.params["blocks"][0]["text"]["text"] == "Feedback that lands"
    [reply] = slack.fake.wait_for("response_url")
    assert reply.params["response_type"] == "ephemeral" and reply.params["replace_original"] is False
    assert "3 lessons to go" in reply.params["text"]
    assert len(slack.handler.events) == 2
    assert len(slack.fake.calls("chat.update")) == 1


def test_foreign_buttons_are_acked_but_not_dispatched(slack: SlackHarness) -> None:
    result = slack.post_interaction(click(slack, action_id="some_link_button", value=None))
    assert result.status == 200
    marker = slack.post_interaction(click(slack, action_id="bw:marker:1", value="1"))
    assert marker.status == 200
    [event] = slack.handler.wait_for(1)  # only ours, and the marker proves the first one was already skipped
    assert isinstance(event, ButtonPressed) and event.action == "marker"


def test_ack_is_immediate_even_when_the_handler_is_slow(slack: SlackHarness) -> None:
    release = threading.Event()

    def slow(event: InboundEvent) -> Response:
        release.wait(5)  # a dispatcher stuck for up to 5 s
        return Response(ephemeral=Message(text="finally", body="finally"))

    slack.handler.respond = slow
    try:
        result = slack.post_interaction(click(slack))
        assert result.status == 200
        assert result.elapsed < 3.0, f"ack took {result.elapsed:.2f}s; Slack gives up after 3 s"
        form = slack_signing.slash_command_form(
            user_id="U1", text="progress", response_url=slack.fake.response_url()
        )
        command = slack.post_command(form)
        assert command.status == 200 and command.elapsed < 3.0
        assert slack.fake.responses() == []  # the reply comes only after the slow work
    finally:
        release.set()
    slack.fake.wait_for("response_url", 2)


def test_dispatcher_crash_becomes_a_polite_ephemeral_reply(slack: SlackHarness) -> None:
    def boom(event: InboundEvent) -> Response:
        raise RuntimeError("database exploded: password=hunter2")

    slack.handler.respond = boom
    assert slack.post_interaction(click(slack)).status == 200
    [reply] = slack.fake.wait_for("response_url")
    assert "Sorry" in reply.params["text"]
    assert "hunter2" not in json.dumps(reply.params) and "Traceback" not in json.dumps(reply.params)


def test_reflection_button_opens_a_modal_and_the_submission_comes_back(slack: SlackHarness) -> None:
    def respond(event: InboundEvent) -> Response:
        if isinstance(event, ButtonPressed):
            return Response(
                modal=Modal(
                    title="Reflection", label="What will you try?", action="reflection.submit", value="42"
                )
            )
        return Response(
            ephemeral=Message(text="Thanks for your reflection.", body="Thanks for your reflection.")
        )

    slack.handler.respond = respond
    payload = click(
        slack, action_id="bw:reflection.open:42", trigger_id="13345224609.738474920.8088930838d88f008e0"
    )
    assert slack.post_interaction(payload).status == 200
    [opened] = slack.fake.wait_for("views.open")
    assert opened.params["trigger_id"] == "13345224609.738474920.8088930838d88f008e0"
    view = opened.params["view"]
    assert view["callback_id"] == "bw_modal"

    submission = slack_signing.view_submission_payload(
        user_id="U100", private_metadata=view["private_metadata"], text="Ask more questions & <listen>."
    )
    result = slack.post_interaction(submission)
    assert result.status == 200 and result.body == ""  # an empty ack closes the modal
    events = slack.handler.wait_for(2)
    submitted = events[1]
    assert isinstance(submitted, ModalSubmitted)
    assert (submitted.action, submitted.value, submitted.text) == (
        "reflection.submit",
        "42",
        "Ask more questions & <listen>.",
    )
    # The modal remembered where it was opened from, so the thank-you lands there, only for this person.
    [ephemeral] = slack.fake.wait_for("chat.postEphemeral")
    assert (ephemeral.params["channel"], ephemeral.params["user"]) == ("D0LEARNER1", "U100")


def test_expired_trigger_falls_back_to_a_polite_reply(slack: SlackHarness) -> None:
    slack.handler.respond = lambda event: Response(modal=Modal(title="R", label="Q", action="a", value="1"))
    assert slack.post_interaction(click(slack, trigger_id="expired.1.2")).status == 200
    [reply] = slack.fake.wait_for("response_url")
    assert "press the button again" in reply.params["text"]


def test_home_tab_button_replace_republishes_home(slack: SlackHarness) -> None:
    slack.handler.respond = lambda event: Response(replace=Message(text="x"))
    assert slack.post_interaction(click(slack, container_type="view")).status == 200
    [publish] = slack.fake.wait_for("views.publish")
    assert publish.params["user_id"] == "U100"


# ------------------------------------------------------------------------------------------------------- events


def test_thread_reply_event_retried_by_slack_is_handled_once(slack: SlackHarness) -> None:
    event = slack_signing.message_event(
        user="U200", channel="C0COHORT01", text="My answer &amp; more", thread_ts="1700.000001"
    )
    envelope = slack_signing.event_callback(event, event_id="Ev0THREAD01")
    assert slack.post_event(envelope).status == 200
    retry = slack.post_event(
        envelope, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    )
    assert retry.status == 200
    marker = slack_signing.event_callback(
        slack_signing.message_event(user="U201", channel="C0COHORT01", text="marker", thread_ts="1700.000001")
    )
    assert slack.post_event(marker).status == 200

    reply, after = slack.handler.wait_for(2)
    assert isinstance(after, ThreadReply) and after.text == "marker"  # the retry was dropped
    assert isinstance(reply, ThreadReply)
    assert (reply.channel, reply.thread, reply.text, reply.actor.user_id) == (
        "C0COHORT01",
        "1700.000001",
        "My answer & more",
        "U200",
    )
    assert reply.message_id == event["ts"]


def test_a_retry_whose_first_attempt_never_arrived_is_processed(slack: SlackHarness) -> None:
    event = slack_signing.message_event(user="U300", channel="C1", text="late", thread_ts="1.1")
    envelope = slack_signing.event_callback(event, event_id="Ev0NEVERSEEN")
    assert (
        slack.post_event(
            envelope, headers={"X-Slack-Retry-Num": "2", "X-Slack-Retry-Reason": "http_error"}
        ).status
        == 200
    )
    [reply] = slack.handler.wait_for(1)
    assert isinstance(reply, ThreadReply) and reply.text == "late"


def test_bot_messages_edits_and_top_level_posts_are_not_replies(slack: SlackHarness) -> None:
    posts = [
        slack_signing.message_event(user="U1", channel="C1", text="bot", thread_ts="1.1", bot_id="B1"),
        slack_signing.message_event(
            user="U1", channel="C1", text="edit", thread_ts="1.1", subtype="message_changed"
        ),
        slack_signing.message_event(user="U1", channel="C1", text="top level"),
        slack_signing.message_event(user="U1", channel="C1", text="joined", subtype="channel_join"),
    ]
    for post in posts:
        assert slack.post_event(slack_signing.event_callback(post)).status == 200
    marker = slack_signing.message_event(user="U2", channel="C1", text="marker", thread_ts="1.1")
    assert slack.post_event(slack_signing.event_callback(marker)).status == 200
    [only] = slack.handler.wait_for(1)
    assert isinstance(only, ThreadReply) and only.text == "marker"


def test_unhandled_event_types_are_acked(slack: SlackHarness) -> None:
    envelope = slack_signing.event_callback({"type": "reaction_added", "user": "U1", "reaction": "tada"})
    assert slack.post_event(envelope).status == 200


def test_app_home_opened_publishes_the_home_view(slack: SlackHarness) -> None:
    slack.handler.home_message = Message(
        text="Your learning",
        title="Your learning",
        body="*Manager Essentials* — 3/8 done\n- Next: Feedback that lands",
        buttons=[Button("Next step", "home.next", "1")],
        context="🔥 4-day streak",
        kind="home",
    )
    envelope = slack_signing.event_callback(slack_signing.app_home_opened_event(user="U400"))
    assert slack.post_event(envelope).status == 200
    [publish] = slack.fake.wait_for("views.publish")
    assert publish.params["user_id"] == "U400"
    view = publish.params["view"]
    assert view["type"] == "home" and view["blocks"][0]["type"] == "header"
    assert slack.fake.home_view("U400") is not None
    [actor] = slack.handler.home_actors
    assert (actor.platform, actor.workspace, actor.user_id) == ("slack", slack_signing.TEAM_ID, "U400")


# ------------------------------------------------------------------------------------------------------- commands


def test_slash_command_is_parsed_and_answered_ephemerally(slack: SlackHarness) -> None:
    slack.handler.respond = lambda event: Response(
        ephemeral=Message(text="Enrolled 2 people in cohort-a.", body="Enrolled **2** people in `cohort-a`.")
    )
    form = slack_signing.slash_command_form(
        user_id="U500",
        text="enroll cohort-a <@U111|alice> <@U222|bob>",
        response_url=slack.fake.response_url("cmd"),
        user_name="lead",
    )
    result = slack.post_command(form)
    assert result.status == 200 and result.body == ""
    [event] = slack.handler.wait_for(1)
    assert isinstance(event, CommandInvoked)
    assert event.args == "enroll cohort-a @alice @bob"
    assert event.mentioned_users == ("U111", "U222")
    assert (event.actor.user_id, event.actor.name, event.channel) == ("U500", "lead", "C0COHORT01")
    [reply] = slack.fake.wait_for("response_url")
    assert reply.path == "/response/cmd"
    assert reply.params["response_type"] == "ephemeral"
    assert reply.params["blocks"][0]["text"]["text"] == "Enrolled *2* people in `cohort-a`."


def test_the_same_slash_command_request_twice_runs_once(slack: SlackHarness) -> None:
    form = slack_signing.slash_command_form(
        user_id="U1", text="progress", response_url=slack.fake.response_url()
    )
    assert slack.post_command(form).status == 200
    assert slack.post_command(form).status == 200
    marker = slack_signing.slash_command_form(
        user_id="U2", text="marker", response_url=slack.fake.response_url()
    )
    assert slack.post_command(marker).status == 200
    first, after = slack.handler.wait_for(2)
    assert isinstance(first, CommandInvoked) and isinstance(after, CommandInvoked)
    assert (first.args, after.args) == ("progress", "marker")
