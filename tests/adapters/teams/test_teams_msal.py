"""The bot's app token comes from the SDK's real MSAL client: the runtime is built from app.yaml-style settings (the
real factory, ``msal_token_provider``), ``teams.authority`` points MSAL at a local Entra-like issuer over TLS, and
the fake Bot Connector only accepts the token that issuer handed out. A second post reuses MSAL's cached token. The
same factory keys the file links from the client secret."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.teams.adapter import TeamsAdapter
from bot.adapters.teams.files import FileLinks, link_key
from bot.app import build
from bot.messages import Attachment, Message
from tests.conftest import make_settings
from tests.fakes.entra_token import FakeEntra
from tests.fakes.teams_connector import APP_ID, CHANNEL, ISSUER, TENANT, FakeTeams

pytestmark = pytest.mark.teams
SECRET = "client-secret-of-the-app"


@pytest.fixture
def connector() -> Iterator[FakeTeams]:
    fake = FakeTeams().start()
    try:
        yield fake
    finally:
        fake.stop()


def test_app_tokens_come_from_msal_against_the_configured_authority(
    sqlite_url: str, tmp_path: Path, connector: FakeTeams, monkeypatch: pytest.MonkeyPatch
) -> None:
    entra = FakeEntra(tmp_path, client_id=APP_ID, secret=SECRET, token=connector.app_token).start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(entra.ca_file))  # trust the fake's self-signed certificate
    teams = {"app_id": APP_ID, "app_password": SECRET, "tenant_id": TENANT, "authority": entra.authority,
             "service_url": connector.service_url, "openid_metadata_url": connector.metadata_url,
             "issuers": [ISSUER]}
    rt = build(make_settings(sqlite_url, platforms=["teams"], teams=teams))
    try:
        adapter = rt.adapters["teams"]
        assert isinstance(adapter, TeamsAdapter)
        adapter.send_channel(TENANT, CHANNEL, Message(text="Week 1 recap", title="Week 1 recap", body="Hello"))
        adapter.send_channel(TENANT, CHANNEL, Message(text="Week 2 recap", title="Week 2 recap", body="Hello"))
        invite = Attachment("s.ics", b"", "text/calendar", source="session-invite:1:s")
        assert adapter.files.link("https://x", invite) == FileLinks(link_key(SECRET)).link("https://x", invite), \
            "without TEAMS_LINK_SECRET the client secret keys the file links, the same in every process"
    finally:
        rt.adapters["teams"].stop()
        entra.stop()
        rt.db.dispose()
    assert [p.activity["summary"] for p in connector.in_channel(CHANNEL)] == ["Week 1 recap", "Week 2 recap"]
    (asked,) = entra.token_requests  # the second post used MSAL's cache
    assert asked["grant_type"] == "client_credentials" and asked["client_id"] == APP_ID
    assert asked["scope"] == "https://api.botframework.com/.default"
