"""Files shared with the bot in a Slack direct message become ``/learn`` commands with the file attached.

Signed message events go to the real bolt endpoint; the fake Slack answers ``files.info`` and serves the private
download URL only to the bot token (its sign-in page otherwise, as Slack does).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.adapters.slack.files import MAX_FILE_BYTES
from bot.adapters.slack.manifest import BOT_EVENTS, BOT_SCOPES
from bot.events import CommandInvoked, Response
from bot.messages import Message
from tests.adapters.slack.harness import SlackHarness
from tests.conftest import make_settings
from tests.fakes import slack_signing

DM = "D0LEADDM01"
REPORT = b"First name,Last name,Email,Duration\nAna,Souza,ana@example.com,52 min\n"


def share(slack: SlackHarness, text: str, *files: dict[str, str], channel: str = DM, kind: str = "im") -> None:
    event = slack_signing.message_event(
        user="U0LEAD", channel=channel, text=text, channel_type=kind, subtype="file_share", files=list(files)
    )
    assert slack.post_event(slack_signing.event_callback(event)).status == 200


def ephemeral_to_lead(slack: SlackHarness, count: int = 1) -> list[str]:
    slack.fake.wait_for("chat.postEphemeral", count)
    return [m["text"] for m in slack.fake.ephemeral_messages("U0LEAD")]


def test_a_file_shared_in_a_dm_is_the_command_its_message_names(slack: SlackHarness) -> None:
    slack.handler.respond = lambda event: Response(ephemeral=Message(text="Attendance recorded."))
    report = slack.fake.share_file("meet.csv", REPORT)
    share(slack, "attendance kickoff spring-leads", report)
    (event,) = slack.handler.wait_for(1)
    assert isinstance(event, CommandInvoked)
    assert event.args == "attendance kickoff spring-leads"
    assert event.attachments == (("meet.csv", REPORT),)
    assert event.channel == DM and event.actor.user_id == "U0LEAD"
    [info] = slack.fake.calls("files.info")
    assert info.params["file"] == report["id"]
    [download] = slack.fake.calls("download")
    assert download.params["authorised"] is True  # the bot token went in the Authorization header
    assert "token" not in download.path  # never in the URL
    assert ephemeral_to_lead(slack) == ["Attendance recorded."]  # the core's answer, in the DM


def test_a_learn_prefix_and_a_transcript_with_its_recording_link(slack: SlackHarness) -> None:
    transcript = slack.fake.share_file("kickoff.vtt", b"WEBVTT\n\n00:00.000 --> 00:01.000\nHi\n")
    share(slack, "/learn recording kickoff <https://rec.example.com/k>", transcript)
    (event,) = slack.handler.wait_for(1)
    assert isinstance(event, CommandInvoked)
    assert event.args == "recording kickoff https://rec.example.com/k"
    assert event.attachments[0][0] == "kickoff.vtt"


def test_files_that_are_not_text_or_too_big_are_refused_before_downloading(slack: SlackHarness) -> None:
    video = slack.fake.share_file("kickoff.mp4", b"\x00\x00\x00 ftypmp42", mimetype="video/mp4")
    share(slack, "recording kickoff https://rec.example.com/k", video)
    huge = slack.fake.share_file("kickoff.vtt", b"WEBVTT\n", size=MAX_FILE_BYTES + 1)
    share(slack, "recording kickoff https://rec.example.com/k", huge)
    texts = ephemeral_to_lead(slack, 2)
    assert texts[0].startswith("I can only read text files here") and "'kickoff.mp4'" in texts[0]
    assert texts[1] == "'kickoff.vtt' is larger than 5 MB; transcripts and reports are text, well under that."
    assert slack.fake.calls("download") == [] and slack.handler.events == []


def test_a_file_without_a_message_gets_a_hint_and_two_files_are_refused(slack: SlackHarness) -> None:
    share(slack, "", slack.fake.share_file("notes.txt", b"notes"))
    first = slack.fake.share_file("a.csv", REPORT)
    share(slack, "attendance kickoff", first, slack.fake.share_file("b.csv", REPORT))
    texts = ephemeral_to_lead(slack, 2)
    assert texts[0].startswith("Thanks for the file. To use it, share it again with what it is for")
    assert texts[1] == "Share one file per message, with what it is for as the message."
    assert slack.handler.events == []


def test_a_deleted_file_gets_a_polite_line(slack: SlackHarness) -> None:
    share(slack, "attendance kickoff", {"id": "F0GONE", "name": "gone.csv"})
    assert ephemeral_to_lead(slack) == ["I could not download 'the file'; please share it again."]


def test_files_in_channels_are_conversation_not_commands(slack: SlackHarness) -> None:
    report = slack.fake.share_file("meet.csv", REPORT)
    share(slack, "attendance kickoff", report, channel="C0COHORT01", kind="channel")
    # One worker handles requests in order: once the marker is handled, the shared file has been passed over.
    marker = slack_signing.message_event(user="U0LEAD", channel="C0COHORT01", text="marker", thread_ts="1.1")
    assert slack.post_event(slack_signing.event_callback(marker)).status == 200
    (event,) = slack.handler.wait_for(1)
    assert not isinstance(event, CommandInvoked)
    assert slack.fake.calls("files.info") == []


def test_the_manifest_asks_for_files_read() -> None:
    assert "files:read" in BOT_SCOPES
    assert "file_shared" in BOT_EVENTS


# ------------------------------------------------------------------------------ bare file_shared events
TRANSCRIPT = b"WEBVTT\n\n00:00.000 --> 00:01.000\nHi\n"


def file_shared(slack: SlackHarness, file: dict[str, str], user: str = "U0LEAD", channel: str = DM) -> None:
    """Slack's ``file_shared`` event: the file id and where, no message text."""
    event = {"type": "file_shared", "channel_id": channel, "file_id": file["id"], "user_id": user,
             "file": {"id": file["id"]}, "event_ts": f"{time.time():.6f}"}  # fmt: skip
    assert slack.post_event(slack_signing.event_callback(event)).status == 200


def test_a_bare_file_shared_event_is_the_command_its_share_names(slack: SlackHarness) -> None:
    # Shared from elsewhere: no message event reaches the bot, only file_shared.
    transcript = slack.fake.share_file(
        "kickoff.vtt", TRANSCRIPT, channel=DM, text="recording kickoff <https://rec.example.com/k>"
    )
    file_shared(slack, transcript)
    (event,) = slack.handler.wait_for(1)
    assert isinstance(event, CommandInvoked)
    assert event.args == "recording kickoff https://rec.example.com/k"
    assert event.attachments == (("kickoff.vtt", TRANSCRIPT),)
    assert event.channel == DM and event.actor.user_id == "U0LEAD"
    [history] = slack.fake.calls("conversations.history")
    assert history.params["channel"] == DM
    [download] = slack.fake.calls("download")
    assert download.params["authorised"] is True


@pytest.mark.parametrize("first", ["message", "file_shared"])
def test_a_file_reported_by_both_events_is_attached_once(slack: SlackHarness, first: str) -> None:
    text = "recording kickoff https://rec.example.com/k"
    transcript = slack.fake.share_file("kickoff.vtt", TRANSCRIPT, channel=DM, text=text)
    ts = slack.fake.messages_in(DM)[-1]["ts"]
    message = slack_signing.message_event(
        user="U0LEAD", channel=DM, text=text, ts=ts, channel_type="im", subtype="file_share", files=[transcript]
    )
    for kind in (first, *({"message", "file_shared"} - {first})):
        if kind == "message":
            assert slack.post_event(slack_signing.event_callback(message)).status == 200
        else:
            file_shared(slack, transcript)
    event = slack.handler.wait_for(1)[0]
    # Both events are handled by now (one worker, in order); the second changed nothing.
    marker = slack_signing.message_event(user="U0LEAD", channel="C0COHORT01", text="marker", thread_ts="1.1")
    assert slack.post_event(slack_signing.event_callback(marker)).status == 200
    slack.handler.wait_for(2)
    assert [e for e in slack.handler.events if isinstance(e, CommandInvoked)] == [event]
    assert len(slack.fake.calls("download")) == 1
    assert event.dedupe_key == f"slack:file:{slack.fake.team_id}:{DM}:{ts}"  # one key for both: the core's dedupe


def test_the_bots_own_uploads_and_files_in_channels_are_not_read(slack: SlackHarness) -> None:
    invite = slack.fake.share_file("session.ics", b"BEGIN:VCALENDAR", user="U0BLENDBOT", channel="D0ANADM001")
    file_shared(slack, invite, user="U0BLENDBOT", channel="D0ANADM001")  # the bot's own .ics in a learner's DM
    report = slack.fake.share_file("meet.csv", REPORT, channel="C0COHORT01", text="attendance kickoff")
    file_shared(slack, report, channel="C0COHORT01")
    marker = slack_signing.message_event(user="U0LEAD", channel="C0COHORT01", text="marker", thread_ts="1.1")
    assert slack.post_event(slack_signing.event_callback(marker)).status == 200
    (event,) = slack.handler.wait_for(1)
    assert not isinstance(event, CommandInvoked)
    assert slack.fake.calls("files.info") == []


# ------------------------------------------------------------------------------ through the real core
def test_a_lead_imports_attendance_from_a_dm_and_a_learner_is_refused(db_url: str, tmp_path: Path) -> None:
    from bot.app import build
    from bot.clock import VirtualClock
    from bot.storage.db import transaction
    from bot.storage.models import Attendance
    from tests.adapters.slack.harness import make_adapter
    from tests.fakes.slack_api import FakeSlack
    from tests.unit.helpers import write_programs
    from tests.unit.test_attendance_import import AFTER, DATA, PROGRAM

    fake = FakeSlack().start()
    clock = VirtualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    adapter = make_adapter(fake, workers=1)
    content = write_programs(tmp_path, {"live": PROGRAM})
    rt = build(make_settings(db_url, content_dir=str(content)), clock=clock, adapters={"slack": adapter})
    try:
        team = fake.team_id
        with transaction(rt.factory) as session:
            lead = rt.engine.person(session, "slack", team, "U0LEAD", name="Lee Lead", tz="Europe/London")
            cohort = rt.engine.create_cohort(
                session, name="c1", program_id="live", platform="slack", workspace=team,
                start=datetime(2026, 3, 2).date(), channel="C0COHORT01", leads=[lead],
            )  # fmt: skip
            for user_id, name, email in (("U0ANA", "Ana Souza", "ana@example.com"), ("U0DI", "Di Nguyen", None)):
                person = rt.engine.person(session, "slack", team, user_id, name=name, email=email, tz="Europe/London")
                rt.engine.enroll(session, cohort, person)
        adapter.start(rt.dispatcher)
        clock.set(AFTER)
        harness = SlackHarness(adapter, fake, None)  # type: ignore[arg-type]
        report = fake.share_file("zoom.csv", (DATA / "zoom.csv").read_bytes(), user="U0ANA")
        ana = slack_signing.message_event(
            user="U0ANA", channel="D0ANADM001", text="attendance workshop", channel_type="im",
            subtype="file_share", files=[report],
        )  # fmt: skip
        assert harness.post_event(slack_signing.event_callback(ana)).status == 200
        fake.wait_for("chat.postEphemeral")
        [refusal] = [m["text"] for m in fake.ephemeral_messages("U0ANA")]
        assert "lead" in refusal.lower()
        report = fake.share_file("zoom.csv", (DATA / "zoom.csv").read_bytes())
        share(harness, "attendance workshop", report)
        fake.wait_for("chat.postEphemeral", 2)
        [summary] = [m["text"] for m in fake.ephemeral_messages("U0LEAD")]
        assert "Recorded (2): Ana Souza (40.5 min, 3 joins merged), Di Nguyen (20 min, 2 joins merged)" in summary
        with rt.factory() as session:
            assert session.query(Attendance).filter(Attendance.source == "zoom").count() == 2
    finally:
        adapter.stop()
        fake.stop()
        rt.db.dispose()


# ------------------------------------------------------------------------------ the /learn recording form
def test_bare_learn_recording_opens_a_form_with_a_file_input_that_becomes_the_command(slack: SlackHarness) -> None:
    assert slack.post_command(slack_signing.slash_command_form(user_id="U0LEAD", text="recording")).status == 200
    [opened] = slack.fake.wait_for("views.open")
    view = opened.json_param("view") if isinstance(opened.params["view"], str) else opened.params["view"]
    kinds = {b["block_id"]: b["element"]["type"] for b in view["blocks"]}
    assert kinds == {"session": "plain_text_input", "cohort": "plain_text_input", "url": "url_text_input",
                     "file": "file_input"}  # fmt: skip
    transcript = slack.fake.share_file("kickoff.vtt", b"WEBVTT\n\n00:00.000 --> 00:01.000\nHi\n")
    payload = slack_signing.view_submission_payload(
        user_id="U0LEAD", private_metadata=view["private_metadata"], text="", callback_id=view["callback_id"]
    )
    payload["view"]["state"] = {
        "values": {
            "session": {"entry": {"type": "plain_text_input", "value": "kickoff"}},
            "cohort": {"entry": {"type": "plain_text_input", "value": None}},
            "url": {"entry": {"type": "url_text_input", "value": "https://rec.example.com/k"}},
            "file": {"entry": {"type": "file_input", "files": [{"id": transcript["id"], "name": "kickoff.vtt"}]}},
        }
    }
    assert slack.post_interaction(payload).status == 200
    (event,) = slack.handler.wait_for(1)
    assert isinstance(event, CommandInvoked)
    assert event.args == "recording kickoff https://rec.example.com/k"
    assert event.attachments == (("kickoff.vtt", b"WEBVTT\n\n00:00.000 --> 00:01.000\nHi\n"),)
    assert event.channel == "C0COHORT01"  # the reply goes where the command was typed
