"""Configuration checks, Socket Mode wiring and multi-workspace (OAuth) installs."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_sdk.oauth.installation_store import Installation
from sqlalchemy import create_engine

from bot.adapters.slack.adapter import SlackAdapter
from bot.adapters.slack.manifest import BOT_SCOPES
from bot.errors import AdapterError, ConfigError
from bot.events import ButtonPressed, Response
from bot.messages import Message
from bot.ports import Recipient
from tests.adapters.slack.harness import SECRET, RecordingHandler, SlackHarness, make_adapter
from tests.fakes import slack_signing
from tests.fakes.slack_api import FakeSlack

pytestmark = pytest.mark.slack


def test_configuration_is_checked_at_construction(fake_slack: FakeSlack) -> None:
    with pytest.raises(ConfigError, match=r"slack\.bot_token"):
        SlackAdapter(signing_secret=SECRET)
    with pytest.raises(ConfigError, match=r"slack\.signing_secret"):
        SlackAdapter(bot_token="xoxb-1")
    with pytest.raises(ConfigError, match=r"slack\.client_id"):
        SlackAdapter(client_id="1.2", signing_secret=SECRET)
    SlackAdapter(bot_token="xoxb-1", app_token="xapp-1")  # Socket Mode needs no signing secret


def test_socket_mode_uses_the_app_token_against_the_configured_api_url(fake_slack: FakeSlack) -> None:
    adapter = make_adapter(fake_slack, app_token=fake_slack.app_token, signing_secret=None)
    with pytest.raises(AdapterError, match=r"apps\.connections\.open"):
        adapter.start(RecordingHandler())
    # The fake answers invalid_auth to any other token, so reaching its "no WebSocket here" answer proves the
    # Socket Mode client went to SLACK_API_URL with the xapp- token.
    [call] = fake_slack.calls("apps.connections.open")
    assert call.status == 200
    with pytest.raises(RuntimeError):
        _ = adapter.port  # no HTTP server in Socket Mode
    adapter.stop()


# ------------------------------------------------------------------------------------------------------- OAuth


@pytest.fixture
def multi(fake_slack: FakeSlack, tmp_path: Path) -> Iterator[SlackHarness]:
    # slack_sdk's SQLAlchemy store imports sqlalchemy.ext.asyncio, which needs greenlet under SQLAlchemy 2.1.
    pytest.importorskip("greenlet")
    engine = create_engine(f"sqlite:///{tmp_path / 'slack.db'}")
    adapter = SlackAdapter(
        client_id="1111.2222",
        client_secret="oauth-client-secret",
        oauth_engine=engine,
        signing_secret=SECRET,
        api_url=fake_slack.api_url,
        port=0,
        host="127.0.0.1",
        per_channel_interval=0.05,
        workspace_rate=100,
        workers=1,
    )
    handler = RecordingHandler()
    adapter.start(handler)
    store = adapter.installation_store
    assert store is not None
    for team, token in (("T0000TWO", "xoxb-team-two"), ("T000THREE", "xoxb-team-three")):
        fake_slack.add_workspace(team, token)
        store.save(
            Installation(
                app_id=slack_signing.APP_ID,
                team_id=team,
                bot_token=token,
                bot_id=f"B{team}",
                bot_user_id="U0BLENDBOT",
                bot_scopes=list(BOT_SCOPES),
                user_id="U0INSTALLER",
            )
        )
    try:
        yield SlackHarness(adapter, fake_slack, handler)
    finally:
        adapter.stop()
        engine.dispose()


def test_each_workspace_is_reached_with_its_own_installation(multi: SlackHarness) -> None:
    fake = multi.fake
    two = multi.adapter.send_direct(Recipient("slack", "T0000TWO", "U1"), Message(text="hi two"))
    three = multi.adapter.send_direct(Recipient("slack", "T000THREE", "U1"), Message(text="hi three"))
    assert [c.team for c in fake.calls("chat.postMessage")] == ["T0000TWO", "T000THREE"]
    assert two.channel != three.channel  # the same user id in two workspaces is two different people
    multi.adapter.update(two, Message(text="edited"))
    assert fake.calls("chat.update")[0].team == "T0000TWO"

    with pytest.raises(AdapterError, match="not installed") as err:
        multi.adapter.send_direct(Recipient("slack", "T0NOTHERE", "U1"), Message(text="hi"))
    assert err.value.retryable is False


def test_inbound_requests_are_answered_with_the_workspace_token(multi: SlackHarness) -> None:
    multi.handler.respond = lambda event: Response(replace=Message(text="Recorded", title="Recorded"))
    ref = multi.adapter.send_direct(Recipient("slack", "T000THREE", "U7"), Message(text="Quiz"))
    payload = slack_signing.block_actions_payload(
        user_id="U7",
        team_id="T000THREE",
        action_id="bw:quiz.answer:5.0",
        value="5.0",
        channel_id=ref.channel,
        message_ts=ref.ts,
        response_url=multi.fake.response_url(),
    )
    assert multi.post_interaction(payload).status == 200
    [event] = multi.handler.wait_for(1)
    assert isinstance(event, ButtonPressed) and event.actor.workspace == "T000THREE"
    [update] = multi.fake.wait_for("chat.update")
    assert update.team == "T000THREE"


def test_the_install_page_is_served(multi: SlackHarness) -> None:
    with urllib.request.urlopen(f"{multi.adapter.url}/slack/install", timeout=5) as resp:
        page = resp.read().decode()
    assert resp.status == 200
    assert "slack.com/oauth/v2/authorize" in page and "client_id=1111.2222" in page
    assert "chat%3Awrite" in page or "chat:write" in page
