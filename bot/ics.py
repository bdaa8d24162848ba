"""Calendar invites (.ics, RFC 5545) for live sessions."""

from __future__ import annotations

from datetime import datetime

from icalendar import Calendar, Event, vText


def session_invite(
    *,
    uid: str,
    title: str,
    description: str,
    start: datetime,
    end: datetime,
    url: str | None,
    location: str | None,
    stamp: datetime,
    sequence: int = 0,
) -> bytes:
    """One VEVENT in UTC. A stable ``uid`` means a re-sent invite updates the calendar entry instead of duplicating
    it."""
    cal = Calendar()
    cal.add("prodid", "-//Blendwise//Live sessions//EN")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    event = Event()
    event.add("uid", uid)
    event.add("summary", title)
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("dtstamp", stamp)
    event.add("sequence", sequence)
    if description:
        event.add("description", description)
    if url:
        event.add("url", url)
    if location or url:
        event["location"] = vText(location or url or "")
    cal.add_component(event)
    return cal.to_ical()
