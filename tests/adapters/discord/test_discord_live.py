"""Live sessions and cohort threads over the fake Discord: Guild Scheduled Events, "Interested" RSVPs, voice
attendance, and prompt threads in text and forum channels."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from bot.adapters.discord import DiscordAdapter
from bot.clock import VirtualClock
from bot.errors import AdapterError
from bot.events import PresenceObserved, RsvpChanged, ThreadReply
from bot.messages import Message
from bot.ports import LiveSession
from tests.adapters.discord.conftest import START, RecordingHandler, wait_until
from tests.fakes.discord_server import FakeDiscord

pytestmark = [pytest.mark.discord, pytest.mark.timeout(60)]

SESSION_START = START + timedelta(hours=1)


def live(
    fake: FakeDiscord, channel: str | None = None, key: str = "cohort-a:kickoff", **extra: object
) -> LiveSession:
    options: dict[str, object] = {
        "key": key,
        "workspace": str(fake.world.guild_id),
        "title": "Kick-off call",
        "description": "Meet your cohort @everyone",
        "start": SESSION_START,
        "end": SESSION_START + timedelta(hours=1),
        "join_url": "https://meet.example.org/kickoff",
        "channel": channel,
    }
    options.update(extra)
    return LiveSession(**options)  # type: ignore[arg-type]


def test_a_session_with_a_join_url_is_an_external_event(adapter: DiscordAdapter, fake: FakeDiscord) -> None:
    event_id = adapter.on_session_scheduled(live(fake))
    (create,) = fake.calls_to("POST", rf"/guilds/{fake.world.guild_id}/scheduled-events")
    body = create.json
    assert body["entity_type"] == 3  # EXTERNAL
    assert body["entity_metadata"] == {"location": "https://meet.example.org/kickoff"}
    assert body.get("channel_id") is None
    assert body["scheduled_start_time"] == SESSION_START.isoformat()
    assert body["scheduled_end_time"] == (SESSION_START + timedelta(hours=1)).isoformat()
    assert body["privacy_level"] == 2
    assert "@everyone" not in body["description"]
    assert int(event_id) in fake.scheduled_events


def test_a_session_in_a_voice_or_stage_channel_is_a_voice_or_stage_event(
    adapter: DiscordAdapter, fake: FakeDiscord
) -> None:
    w = fake.world
    adapter.on_session_scheduled(live(fake, channel="Live Room"))
    adapter.on_session_scheduled(live(fake, channel=str(w.stage_channel_id), key="cohort-a:panel"))
    voice, stage = (c.json for c in fake.calls_to("POST", r"/guilds/\d+/scheduled-events"))
    assert (voice["entity_type"], int(voice["channel_id"])) == (2, w.voice_channel_id)
    assert (stage["entity_type"], int(stage["channel_id"])) == (1, w.stage_channel_id)
    assert "https://meet.example.org/kickoff" in voice["description"]
    with pytest.raises(AdapterError, match="no voice or stage channel 'Nowhere'") as err:
        adapter.on_session_scheduled(live(fake, channel="Nowhere", key="x"))
    assert err.value.retryable is False


def test_a_session_naming_no_channel_goes_to_the_configured_voice_channel(
    make_adapter: Callable[..., DiscordAdapter], handler: RecordingHandler, fake: FakeDiscord
) -> None:
    # The core names no platform's channels: the adapter's ``voice_channel`` setting fills in, an explicit one wins.
    w = fake.world
    adapter = make_adapter(voice_channel="Live Room")
    adapter.start(handler)
    adapter.on_session_scheduled(live(fake))
    adapter.on_session_scheduled(live(fake, channel=str(w.stage_channel_id), key="cohort-a:panel"))
    voice, stage = (c.json for c in fake.calls_to("POST", r"/guilds/\d+/scheduled-events"))
    assert (voice["entity_type"], int(voice["channel_id"])) == (2, w.voice_channel_id)
    assert (stage["entity_type"], int(stage["channel_id"])) == (1, w.stage_channel_id)


def test_rescheduling_the_same_session_edits_its_event(adapter: DiscordAdapter, fake: FakeDiscord) -> None:
    first = adapter.on_session_scheduled(live(fake))
    later = SESSION_START + timedelta(days=1)
    second = adapter.on_session_scheduled(live(fake, start=later, end=later + timedelta(hours=1)))
    assert first == second
    assert len(fake.calls_to("POST", r"/guilds/\d+/scheduled-events")) == 1
    (edit,) = fake.calls_to("PATCH", rf"/guilds/\d+/scheduled-events/{first}")
    assert edit.json["scheduled_start_time"] == later.isoformat()


def test_interested_add_and_remove_become_rsvps(
    adapter: DiscordAdapter, fake: FakeDiscord, handler: RecordingHandler
) -> None:
    event_id = adapter.on_session_scheduled(live(fake))
    user = fake.world.learner_ids[0]
    fake.event_interest(int(event_id), user, interested=True)
    (going,) = handler.wait_for(RsvpChanged)
    assert (going.session_ref, going.going) == (event_id, True)
    assert (going.actor.user_id, going.actor.workspace) == (str(user), str(fake.world.guild_id))
    fake.event_interest(int(event_id), user, interested=False)
    _, not_going = handler.wait_for(RsvpChanged, count=2)
    assert (not_going.session_ref, not_going.going) == (event_id, False)


def test_reconcile_pulls_the_users_endpoint_and_passes_on_differences(
    adapter: DiscordAdapter, fake: FakeDiscord, handler: RecordingHandler
) -> None:
    event_id = adapter.on_session_scheduled(live(fake))
    a, b, c = fake.world.learner_ids[:3]
    for user in (a, b):  # missed while disconnected: the gateway never said
        fake.event_interest(int(event_id), user, dispatch=False)
    changes = adapter.reconcile_rsvps(event_id)
    assert {(ch.actor.user_id, ch.going) for ch in changes} == {(str(a), True), (str(b), True)}
    assert {ch.actor.name for ch in changes} == {"Learner 1", "Learner 2"}
    assert fake.calls_to("GET", rf"/guilds/\d+/scheduled-events/{event_id}/users")

    fake.event_interest(int(event_id), a, interested=False, dispatch=False)
    fake.event_interest(int(event_id), c, dispatch=False)
    changes = adapter.reconcile_rsvps(event_id)
    assert {(ch.actor.user_id, ch.going) for ch in changes} == {(str(a), False), (str(c), True)}
    assert adapter.reconcile_rsvps(event_id) == []
    assert len(handler.of_type(RsvpChanged)) == 4


def test_voice_presence_during_the_session_becomes_attendance(
    adapter: DiscordAdapter, fake: FakeDiscord, handler: RecordingHandler, clock: VirtualClock
) -> None:
    w = fake.world
    event_id = adapter.on_session_scheduled(live(fake, channel="Live Room"))
    guild = str(w.guild_id)
    early, brief, stayer = (str(u) for u in w.learner_ids[:3])

    def move(user: str, channel: int | None, minutes: int) -> None:
        """``user`` joins ``channel`` (or leaves) ``minutes`` after the start; wait until the adapter saw it."""
        clock.set(SESSION_START + timedelta(minutes=minutes))
        fake.voice_state(int(user), channel)
        wait_until(
            lambda: adapter.presence.is_in(guild, user) == (channel is not None), what=f"{user} moving"
        )

    move(early, w.voice_channel_id, -5)  # early: only minutes after the start count
    move(brief, w.voice_channel_id, 1)
    move(stayer, w.voice_channel_id, 3)
    move(brief, None, 6)  # 5 minutes: below the minimum of 10
    assert handler.of_type(PresenceObserved) == []

    move(early, None, 12)
    (observed,) = handler.wait_for(PresenceObserved)
    assert (observed.actor.user_id, observed.session_ref, observed.minutes) == (early, event_id, 12.0)
    assert observed.actor.workspace == guild and observed.actor.name == "Learner 1"

    clock.set(SESSION_START + timedelta(minutes=20))
    reported = adapter.check_presence()  # the stayer never left: the periodic check reports them
    assert [(p.actor.user_id, p.session_ref, p.minutes) for p in reported] == [(stayer, event_id, 17.0)]
    assert [e.actor.user_id for e in handler.of_type(PresenceObserved)] == [early, stayer]
    clock.set(SESSION_START + timedelta(minutes=50))
    assert adapter.check_presence() == []  # once per member and session


def test_members_already_in_the_channel_count_from_when_tracking_starts(
    make_adapter: Callable[..., DiscordAdapter],
    fake: FakeDiscord,
    handler: RecordingHandler,
    clock: VirtualClock,
) -> None:
    w = fake.world
    fake.voice_state(w.learner_ids[4], w.voice_channel_id)  # before the bot connects: in GUILD_CREATE
    adapter = make_adapter()
    adapter.start(handler)
    clock.set(SESSION_START)
    adapter.on_session_scheduled(live(fake, channel="Live Room"))
    clock.set(SESSION_START + timedelta(minutes=10))
    (p,) = adapter.check_presence()
    assert (p.actor.user_id, p.minutes) == (str(w.learner_ids[4]), 10.0)


def test_a_restarted_adapter_tracks_its_earlier_voice_events(
    make_adapter: Callable[..., DiscordAdapter], fake: FakeDiscord, clock: VirtualClock
) -> None:
    first = make_adapter()
    first.start(RecordingHandler())
    event_id = first.on_session_scheduled(live(fake, channel="Live Room"))
    first.stop()
    second = make_adapter()
    second.start(RecordingHandler())
    assert event_id in second.presence.sessions  # rebuilt from GUILD_CREATE's scheduled events


def test_a_prompt_in_a_text_channel_opens_a_thread_and_replies_complete_it(
    adapter: DiscordAdapter, fake: FakeDiscord, handler: RecordingHandler
) -> None:
    w = fake.world
    prompt = Message(
        text="What surprised you this week?",
        title="Week 1 prompt",
        body="Reply in the thread.",
        kind="prompt",
    )
    ref = adapter.send_channel(str(w.guild_id), "cohort-a", prompt)
    assert ref.channel == str(w.text_channel_id)
    (start,) = fake.calls_to("POST", rf"/channels/{w.text_channel_id}/messages/{ref.ts}/threads")
    assert start.json["name"] == "Week 1 prompt"
    thread_id = int(ref.ts)  # a thread started from a message has that message's id
    assert fake.channels[thread_id]["parent_id"] == str(w.text_channel_id)

    reply = fake.post_message(thread_id, w.learner_ids[0], "The feedback model, honestly")
    (event,) = handler.wait_for(ThreadReply)
    assert (event.channel, event.thread, event.message_id) == (ref.channel, ref.ts, str(reply))
    assert event.actor.user_id == str(w.learner_ids[0])
    assert event.text == ""  # without the privileged MESSAGE_CONTENT intent Discord blanks the text

    follow_up = adapter.send_channel(
        str(w.guild_id), "cohort-a", Message(text="Great answers!"), thread=ref.ts
    )
    assert follow_up.channel == str(thread_id)
    fake.post_message(w.text_channel_id, w.learner_ids[1], "not in a thread")
    assert fake.calls_to("POST", rf"/channels/{thread_id}/messages")
    assert len(handler.of_type(ThreadReply)) == 1


def test_reply_text_arrives_with_the_message_content_intent(
    make_adapter: Callable[..., DiscordAdapter], fake: FakeDiscord, handler: RecordingHandler
) -> None:
    adapter = make_adapter(read_message_content=True)
    adapter.start(handler)
    w = fake.world
    ref = adapter.send_channel(str(w.guild_id), "cohort-a", Message(text="Share one tip", kind="prompt"))
    fake.post_message(int(ref.ts), w.learner_ids[2], "Use the SBI model")
    (event,) = handler.wait_for(ThreadReply)
    assert event.text == "Use the SBI model"


def test_a_prompt_in_a_forum_is_a_post_and_replies_in_it_complete_it(
    adapter: DiscordAdapter, fake: FakeDiscord, handler: RecordingHandler
) -> None:
    w = fake.world
    prompt = Message(
        text="Introduce yourself", title="Introductions", body="Name, role, one goal.", kind="prompt"
    )
    ref = adapter.send_channel(str(w.guild_id), "cohort-b", prompt)
    (post,) = fake.calls_to("POST", rf"/channels/{w.forum_channel_id}/threads")
    assert post.json["name"] == "Introductions"
    assert post.json["message"]["embeds"][0]["title"] == "Introductions"
    assert post.json["message"]["allowed_mentions"] == {"parse": []}
    assert ref.channel == str(w.forum_channel_id)

    fake.post_message(int(ref.ts), w.learner_ids[3], "Hi, I'm four")
    (event,) = handler.wait_for(ThreadReply)
    assert (event.channel, event.thread) == (ref.channel, ref.ts)

    adapter.update(ref, Message(text="Introduce yourself", title="Introductions (closed)", kind="prompt"))
    (edit,) = fake.calls_to("PATCH", rf"/channels/{ref.ts}/messages/{ref.ts}")
    assert edit.json["embeds"][0]["title"] == "Introductions (closed)"
    # Announcements in a forum are posts too (a forum holds nothing else).
    notice = adapter.send_channel(
        str(w.guild_id), "cohort-b", Message(text="Session moved to 16:00", kind="notice")
    )
    assert notice.channel == str(w.forum_channel_id)


def test_replies_in_threads_the_bot_did_not_start_are_ignored(
    adapter: DiscordAdapter, fake: FakeDiscord, handler: RecordingHandler
) -> None:
    w = fake.world
    ref = adapter.send_channel(str(w.guild_id), "cohort-a", Message(text="Plain announcement"))
    assert not fake.calls_to("POST", r"/channels/\d+/messages/\d+/threads")
    someone_elses = fake.start_thread(w.text_channel_id, "chatter", owner_id=w.learner_ids[0])
    fake.post_message(someone_elses, w.learner_ids[1], "hello")
    own = adapter.send_channel(str(w.guild_id), "cohort-a", Message(text="Prompt", kind="prompt"))
    fake.post_message(int(own.ts), w.learner_ids[1], "counted")
    (event,) = handler.wait_for(ThreadReply)
    assert event.thread == own.ts
    assert ref.channel == str(w.text_channel_id)


def test_update_edits_a_sent_message_in_place(adapter: DiscordAdapter, fake: FakeDiscord) -> None:
    ref = adapter.send_channel(
        str(fake.world.guild_id), "cohort-a", Message(text="Poll", title="Poll: which day?")
    )
    adapter.update(
        ref, Message(text="Poll closed", title="Poll: which day? (closed)", body="Tuesday won @here")
    )
    (edit,) = fake.calls_to("PATCH", rf"/channels/{ref.channel}/messages/{ref.ts}")
    assert edit.json["embeds"][0]["description"] == "Tuesday won @\u200bhere"
    assert edit.json["components"] == []
    assert edit.json["allowed_mentions"] == {"parse": []}


def test_a_channel_can_be_named_by_id_or_mention(adapter: DiscordAdapter, fake: FakeDiscord) -> None:
    w = fake.world
    by_id = adapter.send_channel(str(w.guild_id), str(w.text_channel_id), Message(text="by id"))
    by_mention = adapter.send_channel(str(w.guild_id), f"<#{w.text_channel_id}>", Message(text="by mention"))
    assert by_id.channel == by_mention.channel == str(w.text_channel_id)
