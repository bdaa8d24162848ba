"""Session invites on Teams: the card's ``.ics`` link is signed, so a web tier that never sent it (its own runtime
and a fresh adapter with nothing in memory) serves it, re-made from the database at the session's current state; a
forged or tampered link is a plain 404; the card has a Join button that opens the meeting; and the card an RSVP or
a move updates in place keeps both."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.adapters.teams.adapter import TeamsAdapter
from bot.adapters.teams.auth import InboundAuth, auth_configuration
from bot.app import Runtime, build
from bot.clock import VirtualClock
from tests.conftest import make_settings
from tests.contract.drivers import Msg
from tests.contract.teams_driver import TeamsDriver
from tests.contract.test_contract import (
    COHORT_START_UTC,
    INVITES_OUT,
    SESSION,
    _event,
    _invites,
    setup_cohort,
)
from tests.fakes.teams_connector import APP_ID, ISSUER, TENANT

pytestmark = pytest.mark.teams
SECRET = "the-app-client-secret"
JOIN = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0"


@dataclass
class Tiers:
    """A worker (the runtime that plans and sends, with its own adapter) and a web tier that only serves HTTP."""

    driver: TeamsDriver
    worker: Runtime
    web: TeamsAdapter
    clock: VirtualClock


@pytest.fixture
def tiers(db_url: str) -> Iterator[Tiers]:
    clock = VirtualClock(COHORT_START_UTC)
    driver = TeamsDriver(link_secret=SECRET)
    worker = build(make_settings(db_url), clock=clock, adapters={"teams": driver.adapter})
    driver.start(worker.dispatcher)
    web = TeamsAdapter(app_id=APP_ID, auth=InboundAuth(auth_configuration(APP_ID, issuers=[ISSUER]),
                                                       driver.fake.metadata_url),
                       tokens=driver.fake.tokens, service_url=driver.fake.service_url, tenant_id=TENANT, port=0,
                       link_secret=SECRET, clock=clock)
    web_rt = build(make_settings(db_url), clock=clock, adapters={"teams": web})
    web.bind(web_rt.factory)
    web.start(web_rt.dispatcher)
    try:
        yield Tiers(driver, worker, web, clock)
    finally:
        web.stop()
        driver.stop()
        worker.db.dispose()
        web_rt.db.dispose()


def _actions(msg: Msg) -> list[dict[str, Any]]:
    return list((msg.ref.card or {}).get("actions", []))


def _ics_link(msg: Msg) -> str:
    (url,) = [a["url"] for a in _actions(msg) if a["type"] == "Action.OpenUrl" and "/api/files?" in a["url"]]
    return str(url)


def _join(msg: Msg) -> list[dict[str, Any]]:
    return [a for a in _actions(msg) if a["type"] == "Action.OpenUrl" and a["title"] == "Join"]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _on(adapter: TeamsAdapter, link: str, **query: str) -> str:
    """``link`` served by ``adapter`` (another process's address), its query changed by ``query``."""
    parts = urllib.parse.urlsplit(link)
    params = dict(urllib.parse.parse_qsl(parts.query))
    params.update(query)
    return f"{adapter.url}{parts.path}?{urllib.parse.urlencode(params)}"


def _invite(tiers: Tiers) -> Msg:
    setup_cohort(tiers.driver, tiers.worker, join_urls={SESSION: JOIN})
    tiers.clock.set(INVITES_OUT)
    tiers.worker.step()
    (invite,) = _invites(tiers.driver, "UANA")
    return invite


def test_another_web_process_serves_the_invite_link_at_the_sessions_current_state(tiers: Tiers) -> None:
    invite = _invite(tiers)
    link = _ics_link(invite)
    assert _join(invite) == [{"type": "Action.OpenUrl", "title": "Join", "url": JOIN}]

    status, data = _get(_on(tiers.web, link))
    assert status == 200, "a process that never sent the card serves its link"
    cal, first = _event(data)
    assert str(cal["METHOD"]) == "REQUEST" and int(first["SEQUENCE"]) == 0
    assert first.decoded("DTSTART") == datetime(2026, 3, 9, 14, 0, tzinfo=UTC)

    reply = tiers.driver.command("ULEAD", f"session move contract {SESSION} 2026-03-12 15:00")
    assert "now starts" in reply, reply
    tiers.worker.step()
    cal, moved = _event(_get(_on(tiers.web, link))[1])  # the link in the card as first sent
    assert str(moved["UID"]) == str(first["UID"]) and int(moved["SEQUENCE"]) > 0
    assert moved.decoded("DTSTART") == datetime(2026, 3, 12, 15, 0, tzinfo=UTC)
    (edited,) = _invites(tiers.driver, "UANA")
    assert edited.ref is invite.ref and "Moved" in edited.text
    assert _ics_link(edited) and _join(edited), "the card edited in place keeps its calendar link and Join"

    reply = tiers.driver.command("ULEAD", f"session cancel contract {SESSION}")
    assert "is cancelled" in reply, reply
    tiers.worker.step()
    cal, cancelled = _event(_get(_on(tiers.web, link))[1])
    assert str(cal["METHOD"]) == "CANCEL" and str(cancelled["STATUS"]) == "CANCELLED"
    assert int(cancelled["SEQUENCE"]) > int(moved["SEQUENCE"])


def test_a_forged_or_tampered_link_is_a_plain_404(tiers: Tiers) -> None:
    link = _ics_link(_invite(tiers))
    source = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query))["s"]
    kind, enrollment, step = source.split(":")
    stranger = TeamsAdapter(app_id=APP_ID, auth=tiers.web.auth, tokens=tiers.driver.fake.tokens,
                            link_secret="another-deployment")
    genuine = tiers.worker.dispatcher.attachment(source)
    assert genuine is not None
    _, signed_elsewhere = stranger.files.link(tiers.web.url, genuine)
    forged = [
        _on(tiers.web, link, s=f"{kind}:{int(enrollment) + 1}:{step}"),  # another learner's invite, same MAC
        _on(tiers.web, link, t="A" * 43),
        _on(tiers.web, link, t=""),
        _on(tiers.web, link, s=f"{kind}:{enrollment}:not-a-step"),
        _on(tiers.web, link, s="", t=""),
        signed_elsewhere,
        f"{tiers.web.url}/api/files?s=%00%ff&t=%%%",
    ]
    for url in forged:
        status, body = _get(url)
        assert (status, body) == (404, b"not found"), url
    assert _get(_on(tiers.web, link))[0] == 200, "the genuine link still works"


def test_after_an_rsvp_the_card_keeps_its_calendar_link_and_join_button(tiers: Tiers) -> None:
    invite = _invite(tiers)
    yes = invite.button("rsvp.yes")
    assert yes is not None
    tiers.driver.press("UANA", invite, yes)
    (answered,) = _invites(tiers.driver, "UANA")
    assert answered.ref.history, "the card was replaced in place"
    assert "going" in answered.text.lower()
    assert _join(answered) == [{"type": "Action.OpenUrl", "title": "Join", "url": JOIN}]
    _, event = _event(_get(_on(tiers.web, _ics_link(answered)))[1])
    assert event["ATTENDEE"].params["PARTSTAT"] == "ACCEPTED", "the link gives the invite with the RSVP"


def test_the_digest_chart_link_is_served_by_another_web_process(tiers: Tiers) -> None:
    setup_cohort(tiers.driver, tiers.worker, manager="UMGR")
    tiers.clock.set(datetime(2026, 3, 2, 9, 5, tzinfo=UTC))  # Monday 09:00 London: the managers' digest
    tiers.worker.plan_digests()
    tiers.worker.step()
    links = [a["url"] for m in tiers.driver.inbox("UMGR") for a in _actions(m)
             if a["type"] == "Action.OpenUrl" and "/api/files?" in a["url"]]
    (chart,) = [link for link in links if link.endswith(".png")]
    status, data = _get(_on(tiers.web, chart))
    assert status == 200 and data.startswith(b"\x89PNG"), "drawn again by a process that never sent it"
