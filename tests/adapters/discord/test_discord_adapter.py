"""The Discord adapter with the real discord.py client against the fake Discord: connecting, sending, and
interactions (buttons, modals, /learn)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from bot.adapters.discord import DiscordAdapter
from bot.adapters.discord.render import ZWSP
from bot.events import ButtonPressed, CommandInvoked, InboundEvent, ModalSubmitted, Response
from bot.messages import Attachment, Button, Field, Message, Modal
from bot.ports import Recipient, Subcommand
from tests.adapters.discord.conftest import CORE_SUBCOMMANDS, RecordingHandler
from tests.fakes.discord_server import GUILD_MEMBERS, GUILDS, MESSAGE_CONTENT, FakeDiscord

pytestmark = [pytest.mark.discord, pytest.mark.timeout(60)]

EPHEMERAL = 64


def learner(fake: FakeDiscord, n: int = 0) -> Recipient:
    return Recipient("discord", str(fake.world.guild_id), str(fake.world.learner_ids[n]), f"Learner {n + 1}")


def lesson(**extra: object) -> Message:
    options: dict[str, object] = {
        "text": "Your lesson is ready",
        "title": "Lesson 1: Feedback",
        "body": "Good feedback is **specific**.",
        "buttons": [Button("Done", "done", "41"), Button("Snooze 1h", "snooze", "41:1h")],
        "kind": "lesson",
    }
    options.update(extra)
    return Message(**options)  # type: ignore[arg-type]


def test_connects_identifies_with_minimal_intents_and_syncs_learn(
    adapter: DiscordAdapter, fake: FakeDiscord
) -> None:
    session = fake.wait_for_session()
    assert session.intents == adapter.intents.value
    assert session.intents & GUILDS
    assert not session.intents & (GUILD_MEMBERS | MESSAGE_CONTENT)
    sent = [p["t"] for p in session.sent]
    assert sent[:2] == ["READY", "GUILD_CREATE"]
    (sync,) = fake.calls_to("PUT", rf"/applications/\d+/guilds/{fake.world.guild_id}/commands")
    (learn,) = sync.json
    assert learn["name"] == "learn"
    assert [o["name"] for o in learn["options"]] == list(CORE_SUBCOMMANDS)  # the handler's list, in its order
    assert all(o["type"] == 1 for o in learn["options"])
    # the guild cache came from GUILD_CREATE: channel kinds are known
    w = fake.world
    assert adapter.channel_ready(str(w.guild_id), "cohort-a")
    assert adapter.channel_ready(str(w.guild_id), "cohort-b")
    assert not adapter.channel_ready(str(w.guild_id), "no-such-cohort")


def test_send_direct_opens_a_dm_and_posts_embeds_buttons_and_files(
    adapter: DiscordAdapter, fake: FakeDiscord
) -> None:
    message = lesson(
        title="Lesson for @everyone",
        body="Hi <@&840000000000000001>, read this.",
        fields=[Field("Time", "15:00 UTC")],
        attachments=[Attachment("session.ics", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "text/calendar")],
        delivery_id=42,
    )
    ref = adapter.send_direct(learner(fake), message)

    (dm,) = fake.calls_to("POST", "/users/@me/channels")
    assert dm.json == {"recipient_id": fake.world.learner_ids[0]}
    (post,) = fake.calls_to("POST", rf"/channels/{ref.channel}/messages")
    assert post.status == 200
    body = post.json
    assert body["allowed_mentions"] == {"parse": []}
    (embed,) = body["embeds"]
    assert embed["title"] == f"Lesson for @{ZWSP}everyone"
    assert f"<@{ZWSP}&840000000000000001>" in embed["description"]
    assert embed["fields"] == [{"name": "Time", "value": "15:00 UTC", "inline": True}]
    ids = [c["custom_id"] for row in body["components"] for c in row["components"]]
    assert ids == ["bw:done:41", "bw:snooze:41:1h"]
    assert body["enforce_nonce"] is True and body["nonce"].startswith("bw")
    assert [(f.filename, f.content) for f in post.files] == [
        ("session.ics", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    ]
    assert ref.platform == "discord" and ref.ts == fake.messages_in(int(ref.channel))[-1]["id"]
    assert adapter.find_delivery(learner(fake), 42) == ref


def test_a_retried_delivery_is_not_posted_twice_but_its_parts_are(
    adapter: DiscordAdapter, fake: FakeDiscord
) -> None:
    first = adapter.send_direct(learner(fake), lesson(delivery_id=7))
    again = adapter.send_direct(learner(fake), lesson(delivery_id=7))
    part_two = adapter.send_direct(learner(fake), lesson(delivery_id=7, title="Lesson 1 (part 2)"))
    assert again == first
    assert part_two != first
    assert len(fake.messages_in(int(first.channel))) == 2


def test_plain_text_is_content_with_mentions_escaped(adapter: DiscordAdapter, fake: FakeDiscord) -> None:
    ref = adapter.send_direct(learner(fake), Message(text="Reminder for @here and <@850000000000000002>"))
    (post,) = fake.calls_to("POST", rf"/channels/{ref.channel}/messages")
    assert post.json["content"] == f"Reminder for @{ZWSP}here and <@{ZWSP}850000000000000002>"
    assert post.json["allowed_mentions"] == {"parse": []}


def test_button_press_reaches_the_handler_once_and_edits_in_place(
    make_adapter: Callable[..., DiscordAdapter], fake: FakeDiscord
) -> None:
    handler = RecordingHandler(
        lambda e: Response(replace=Message(text="Correct!", title="Quiz", body="✅ Correct"))
    )
    adapter = make_adapter()
    adapter.start(handler)
    ref = adapter.send_direct(learner(fake), lesson())

    interaction = fake.press_button(fake.world.learner_ids[0], int(ref.ts), "bw:done:41")
    ack = fake.wait_for_ack(interaction)

    (event,) = handler.wait_for(ButtonPressed)
    assert (event.action, event.value) == ("done", "41")
    assert event.actor.user_id == str(fake.world.learner_ids[0])
    assert event.actor.workspace == str(fake.world.guild_id)  # a DM press belongs to the primary guild
    assert event.message == ref
    assert event.dedupe_key == f"discord:interaction:{interaction}"
    assert ack["type"] == 7  # UPDATE_MESSAGE: the quiz message itself shows the feedback
    edited = fake.messages[int(ref.ts)]
    assert edited["embeds"][0]["description"] == "✅ Correct" and edited["components"] == []
    assert len(handler.events) == 1


def test_an_ephemeral_response_is_ephemeral(
    make_adapter: Callable[..., DiscordAdapter], fake: FakeDiscord
) -> None:
    handler = RecordingHandler(lambda e: Response(ephemeral=Message(text="Snoozed for 1 hour.")))
    adapter = make_adapter()
    adapter.start(handler)
    ref = adapter.send_channel(str(fake.world.guild_id), "cohort-a", lesson(kind="notice"))
    interaction = fake.press_button(fake.world.learner_ids[1], int(ref.ts), "bw:snooze:41:1h")
    ack = fake.wait_for_ack(interaction)
    assert ack["type"] == 4 and ack["data"]["flags"] & EPHEMERAL
    assert ack["data"]["content"] == "Snoozed for 1 hour."
    (event,) = handler.wait_for(ButtonPressed)
    assert event.actor.workspace == str(fake.world.guild_id)
    assert event.actor.name == "Learner 2"


def test_an_empty_response_still_acknowledges(
    adapter: DiscordAdapter, fake: FakeDiscord, handler: RecordingHandler
) -> None:
    ref = adapter.send_direct(learner(fake), lesson())
    interaction = fake.press_button(fake.world.learner_ids[0], int(ref.ts), "bw:done:41")
    assert fake.wait_for_ack(interaction)["type"] == 6  # DEFERRED_UPDATE_MESSAGE: nothing changes


def test_a_duplicate_interaction_carries_the_same_dedupe_key(
    adapter: DiscordAdapter, fake: FakeDiscord, handler: RecordingHandler
) -> None:
    ref = adapter.send_direct(learner(fake), lesson())
    first = fake.press_button(fake.world.learner_ids[0], int(ref.ts), "bw:done:41")
    fake.wait_for_ack(first)
    again = fake.press_button(fake.world.learner_ids[0], int(ref.ts), "bw:done:41", interaction_id=first)
    assert again == first
    one, two = handler.wait_for(ButtonPressed, count=2)
    assert one.dedupe_key == two.dedupe_key == f"discord:interaction:{first}"
    # Discord refuses a second answer to the same interaction; the adapter logs it and carries on.
    fake.wait_for_calls("POST", rf"/interactions/{first}/.+/callback", status=400)


def test_a_slow_dispatcher_is_deferred_within_three_seconds(
    make_adapter: Callable[..., DiscordAdapter], fake: FakeDiscord
) -> None:
    handler = RecordingHandler(
        lambda e: Response(replace=Message(text="Saved", title="Done"), ephemeral=Message(text="Nice work"))
    )
    handler.gate = threading.Event()
    adapter = make_adapter(ack_budget=0.2)
    adapter.start(handler)
    ref = adapter.send_direct(learner(fake), lesson())
    interaction = fake.press_button(fake.world.learner_ids[0], int(ref.ts), "bw:done:41")
    ack = fake.wait_for_ack(interaction, timeout=fake.interaction_deadline)
    assert ack["type"] == 6  # deferred while the dispatcher is still working
    handler.gate.set()
    (edit,) = fake.wait_for_calls("PATCH", r"/webhooks/\d+/.+/messages/@original")
    assert edit.json["embeds"][0]["title"] == "Done"
    (followup,) = fake.wait_for_calls("POST", r"/webhooks/\d+/[^/]+")
    assert followup.json["flags"] & EPHEMERAL and followup.json["content"] == "Nice work"


def test_a_reflection_modal_opens_and_its_submission_arrives(
    make_adapter: Callable[..., DiscordAdapter], fake: FakeDiscord
) -> None:
    def respond(event: InboundEvent) -> Response:
        if isinstance(event, ButtonPressed):
            return Response(
                modal=Modal("Reflection", "What will you try this week?", "reflect", "57", "A sentence")
            )
        return Response(ephemeral=Message(text="Thanks for reflecting."))

    handler = RecordingHandler(respond)
    adapter = make_adapter()
    adapter.start(handler)
    ref = adapter.send_direct(learner(fake), lesson(buttons=[Button("Reflect", "open_reflection", "57")]))
    opened = fake.press_button(fake.world.learner_ids[0], int(ref.ts), "bw:open_reflection:57")
    ack = fake.wait_for_ack(opened)
    assert ack["type"] == 9
    assert ack["data"]["custom_id"] == "bw:reflect:57"
    assert ack["data"]["title"] == "Reflection"

    submitted = fake.submit_modal(fake.world.learner_ids[0], opened, "Ask one open question per meeting.")
    answer = fake.wait_for_ack(submitted)
    (event,) = handler.wait_for(ModalSubmitted)
    assert (event.action, event.value) == ("reflect", "57")
    assert event.text == "Ask one open question per meeting."
    assert event.dedupe_key == f"discord:interaction:{submitted}"
    assert answer["type"] == 4 and answer["data"]["flags"] & EPHEMERAL


def test_learn_progress_is_a_command_with_the_members_roles(
    make_adapter: Callable[..., DiscordAdapter], fake: FakeDiscord
) -> None:
    handler = RecordingHandler(lambda e: Response(ephemeral=Message(text="You are 3/8 through Onboarding.")))
    adapter = make_adapter()
    adapter.start(handler)
    w = fake.world
    interaction = fake.invoke_command(w.lead_id, "learn", "progress", {"text": "onboarding"})
    ack = fake.wait_for_ack(interaction)
    (event,) = handler.wait_for(CommandInvoked)
    assert event.args == "progress onboarding"
    assert event.actor.user_id == str(w.lead_id)
    assert event.actor.platform_roles == (w.lead_role,)
    assert event.actor.roles == ("lead",)  # mapped by the adapter: the core never sees a Discord role name
    assert event.actor.workspace == str(w.guild_id)
    assert event.channel == str(w.text_channel_id)
    assert ack["type"] == 4 and ack["data"]["flags"] & EPHEMERAL
    assert ack["data"]["content"] == "You are 3/8 through Onboarding."


def test_learn_without_text_and_a_learner_without_roles(
    adapter: DiscordAdapter, fake: FakeDiscord, handler: RecordingHandler
) -> None:
    interaction = fake.invoke_command(fake.world.learner_ids[2], "learn", "help")
    (event,) = handler.wait_for(CommandInvoked)
    assert event.args == "help"
    assert event.actor.platform_roles == ()
    assert event.actor.roles == ()
    ack = fake.wait_for_ack(interaction)
    assert ack["data"]["content"] == "Done." and ack["data"]["flags"] & EPHEMERAL


def test_learn_enroll_with_a_user_and_a_csv(
    adapter: DiscordAdapter, fake: FakeDiscord, handler: RecordingHandler
) -> None:
    w = fake.world
    text = f"onboarding cohort-a <@{w.learner_ids[3]}>"
    interaction = fake.invoke_command(
        w.admin_id,
        "learn",
        "enroll",
        {"text": text, "user": w.learner_ids[4], "file": "csv"},
        attachment=("people.csv", b"850000000000000001\n"),
    )
    (event,) = handler.wait_for(CommandInvoked)
    assert event.args == f"enroll {text} <@{w.learner_ids[4]}>"
    assert event.mentioned_users == (str(w.learner_ids[3]), str(w.learner_ids[4]))
    assert event.attachments == (("people.csv", b"850000000000000001\n"),)
    assert event.actor.platform_roles == (w.admin_role,)
    assert event.actor.roles == ("admin",)
    assert fake.wait_for_ack(interaction)["type"] == 5  # deferred before downloading the file


class FileTakingHandler(RecordingHandler):
    """The core's list plus a feature subcommand that takes a file (``/learn attendance`` with its report)."""

    def subcommands(self) -> list[Subcommand]:
        return [
            *super().subcommands(),
            Subcommand("attendance", "Leads: attendance", "<session> [cohort]", "The participant report"),
        ]


def test_a_subcommand_declaring_a_file_gets_a_file_option(
    make_adapter: Callable[..., DiscordAdapter], fake: FakeDiscord
) -> None:
    handler = FileTakingHandler()
    adapter = make_adapter()
    adapter.start(handler)
    report = b"Name (Original Name),User Email,Join Time,Leave Time,Duration (Minutes)\n"
    interaction = fake.invoke_command(
        fake.world.lead_id,
        "learn",
        "attendance",
        {"text": "kickoff cohort-a", "file": "report"},
        attachment=("zoom.csv", report),
    )
    (event,) = handler.wait_for(CommandInvoked)
    assert event.args == "attendance kickoff cohort-a"
    assert event.attachments == (("zoom.csv", report),)
    assert fake.wait_for_ack(interaction)["type"] == 5  # deferred before downloading the file
    learn = next(c for c in fake.commands[next(iter(fake.commands))] if c["name"] == "learn")
    options = {o["name"]: [x["name"] for x in o.get("options", [])] for o in learn["options"]}
    assert options["attendance"] == ["text", "file"]
    assert options["help"] == ["text"]  # subcommands without a file keep one text option


def test_a_public_command_response_is_posted_in_the_channel(
    make_adapter: Callable[..., DiscordAdapter], fake: FakeDiscord
) -> None:
    handler = RecordingHandler(lambda e: Response(public=Message(text="Poll: @everyone which day?")))
    adapter = make_adapter()
    adapter.start(handler)
    interaction = fake.invoke_command(fake.world.lead_id, "learn", "poll", {"text": "cohort-a Which day?"})
    ack = fake.wait_for_ack(interaction)
    assert ack["type"] == 4 and not (ack["data"].get("flags") or 0) & EPHEMERAL
    assert ack["data"]["content"] == f"Poll: @{ZWSP}everyone which day?"
    assert ack["data"]["allowed_mentions"] == {"parse": []}


def test_a_dispatcher_crash_becomes_a_polite_ephemeral_reply(
    make_adapter: Callable[..., DiscordAdapter], fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(event: InboundEvent) -> Response:
        raise RuntimeError("database on fire")

    adapter = make_adapter()
    adapter.start(RecordingHandler(explode))
    interaction = fake.invoke_command(fake.world.learner_ids[0], "learn", "next")
    ack = fake.wait_for_ack(interaction)
    assert ack["data"]["flags"] & EPHEMERAL
    assert "database on fire" not in ack["data"]["content"]
    assert "went wrong" in ack["data"]["content"]
    assert "database on fire" in caplog.text


def test_a_response_discord_cannot_show_is_refused_politely(
    make_adapter: Callable[..., DiscordAdapter], fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    too_many = [Button(str(n), "pick", str(n)) for n in range(30)]
    adapter = make_adapter()
    adapter.start(RecordingHandler(lambda e: Response(ephemeral=Message(text="Pick one", buttons=too_many))))
    interaction = fake.invoke_command(fake.world.learner_ids[0], "learn", "next")
    ack = fake.wait_for_ack(interaction)
    assert ack["data"]["flags"] & EPHEMERAL and "went wrong" in ack["data"]["content"]
    assert "at most 25 buttons" in caplog.text
