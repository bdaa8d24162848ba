"""Teams file links expire: a link opens for LIFETIME_DAYS whole days, and its expiry is signed with its source."""

from __future__ import annotations

import urllib.parse

from bot.adapters.teams.files import DAY, LIFETIME_DAYS, FileLinks, link_key
from bot.messages import Attachment
from bot.web import HttpRequest

INVITE = Attachment("session.ics", b"BEGIN:VCALENDAR", "text/calendar", source="session-invite:1:kickoff")
MONDAY_NOON = 1_772_452_800.0  # 2026-03-02 12:00 UTC


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def served(links: FileLinks, url: str) -> int:
    query = urllib.parse.urlsplit(url).query
    return links.serve(HttpRequest("GET", "/api/files", query, {}, b"")).status


def make(clock: Clock) -> FileLinks:
    links = FileLinks(link_key("deployment secret"), now=clock)
    links.remake = lambda source: INVITE if source == INVITE.source else None
    return links


def with_query(url: str, **changes: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query.update(changes)
    return parts._replace(query=urllib.parse.urlencode(query)).geturl()


def test_a_link_opens_until_its_last_day_and_not_after() -> None:
    clock = Clock(MONDAY_NOON)
    links = make(clock)
    _, url = links.link("https://bot.example", INVITE)
    assert served(links, url) == 200
    clock.t = MONDAY_NOON + LIFETIME_DAYS * DAY  # the same time of day, LIFETIME_DAYS later: still open
    assert served(links, url) == 200
    clock.t = MONDAY_NOON + (LIFETIME_DAYS + 1) * DAY  # past the end of that day
    assert served(links, url) == 404


def test_links_made_on_one_day_are_one_url_and_a_later_day_moves_the_expiry() -> None:
    clock = Clock(MONDAY_NOON)
    links = make(clock)
    _, first = links.link("https://bot.example", INVITE)
    clock.t += 3600
    assert links.link("https://bot.example", INVITE)[1] == first
    clock.t += DAY
    assert links.link("https://bot.example", INVITE)[1] != first


def test_an_extended_missing_or_garbled_expiry_is_a_plain_404() -> None:
    clock = Clock(MONDAY_NOON)
    links = make(clock)
    _, url = links.link("https://bot.example", INVITE)
    expires = int(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))["e"])
    for bad in [str(expires + 365 * DAY), "", "²", "1" * 40, "-1", "0x10"]:
        assert served(links, with_query(url, e=bad)) == 404, bad
    legacy = f"https://bot.example/api/files?s={INVITE.source}&t=x&name=session.ics"  # made before expiries
    assert served(links, legacy) == 404
    assert served(links, url) == 200


def test_an_unsourced_file_kept_in_memory_expires_too() -> None:
    clock = Clock(MONDAY_NOON)
    links = make(clock)
    kept = Attachment("notes.txt", b"hello", "text/plain")
    _, url = links.link("https://bot.example", kept)
    assert served(links, url) == 200
    clock.t += (LIFETIME_DAYS + 2) * DAY
    assert served(links, url) == 404
