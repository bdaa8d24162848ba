"""The .ics files: iTIP messages checked with the icalendar parser against named RFC 5545 / RFC 5546 rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from icalendar import Calendar

from bot import ics
from bot.config import Settings

START = datetime(2026, 3, 12, 15, 0, tzinfo=UTC)
END = datetime(2026, 3, 12, 16, 0, tzinfo=UTC)
STAMP = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def invite(**overrides: object) -> Calendar:
    args: dict[str, object] = {
        "uid": ics.uid(7, "workshop", "learn.example.com"),
        "title": "Feedback workshop",
        "description": "Feedback Fundamentals · spring",
        "start": START,
        "end": END,
        "url": "https://meet.example.com/fw",
        "location": None,
        "stamp": STAMP,
        "organizer": ics.Party("mailto:lee@example.com", "Lee Lead"),
        "attendee": ics.Party("mailto:ana@example.com", "Ana Silva"),
        "rsvp": "maybe",
        "sequence": 2,
    }
    args.update(overrides)
    return Calendar.from_ical(ics.session_invite(**args))  # type: ignore[arg-type]


def only_event(cal: Calendar):  # type: ignore[no-untyped-def]
    events = cal.walk("VEVENT")
    assert len(events) == 1
    return events[0]


def test_a_request_carries_what_rfc_5546_requires():
    """RFC 5546 §3.2.2 (REQUEST): ORGANIZER, ATTENDEE, DTSTAMP, DTSTART, SUMMARY, UID and SEQUENCE are present;
    RFC 5545 §3.7.2/§3.7.3: VERSION 2.0 and a METHOD at calendar level; §3.8.2.2: DTEND after DTSTART."""
    cal = invite()
    event = only_event(cal)
    assert str(cal["VERSION"]) == "2.0" and str(cal["METHOD"]) == "REQUEST"
    for prop in ("ORGANIZER", "ATTENDEE", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY", "UID", "SEQUENCE"):
        assert prop in event, prop
    assert event.decoded("DTSTART") == START < event.decoded("DTEND") == END
    assert event.decoded("DTSTAMP") == STAMP
    assert int(event["SEQUENCE"]) == 2 and str(event["STATUS"]) == "CONFIRMED"
    assert str(event["ORGANIZER"]) == "mailto:lee@example.com" and event["ORGANIZER"].params["CN"] == "Lee Lead"
    attendee = event["ATTENDEE"]
    assert str(attendee) == "mailto:ana@example.com"
    assert dict(attendee.params) == {
        "CN": "Ana Silva", "ROLE": "REQ-PARTICIPANT", "PARTSTAT": "TENTATIVE", "RSVP": "TRUE", "CUTYPE": "INDIVIDUAL",
    }


def test_a_cancel_has_the_same_uid_a_higher_sequence_and_status_cancelled():
    """RFC 5546 §3.2.5 (CANCEL): METHOD:CANCEL with STATUS:CANCELLED on the component, the same UID, ORGANIZER
    and ATTENDEE; RFC 5545 §3.8.7.4: SEQUENCE grows with every significant revision."""
    request = only_event(invite(sequence=1))
    cal = invite(sequence=2, cancelled=True)
    cancel = only_event(cal)
    assert str(cal["METHOD"]) == "CANCEL" and str(cancel["STATUS"]) == "CANCELLED"
    assert str(cancel["UID"]) == str(request["UID"])
    assert int(cancel["SEQUENCE"]) > int(request["SEQUENCE"])
    assert "ORGANIZER" in cancel and "ATTENDEE" in cancel


@pytest.mark.parametrize(("rsvp", "partstat"), [("yes", "ACCEPTED"), ("maybe", "TENTATIVE"), ("no", "DECLINED"),
                                                ("wait", "NEEDS-ACTION"), (None, "NEEDS-ACTION")])
def test_partstat_follows_the_rsvp(rsvp, partstat):
    """RFC 5545 §3.2.12: PARTSTAT values of a VEVENT attendee."""
    assert only_event(invite(rsvp=rsvp))["ATTENDEE"].params["PARTSTAT"] == partstat


def test_the_uid_names_the_installation():
    """RFC 5545 §3.8.4.7: a globally unique UID, with the installation's domain on the right-hand side."""
    assert str(only_event(invite())["UID"]) == "blendwise-7-workshop@learn.example.com"
    assert Settings.model_validate({"live": {"ics_domain": "Learn.Example.com"}}).live.uid_domain == "learn.example.com"
    assert Settings.model_validate({"live": {"organizer": "academy@corp.example"}}).live.uid_domain == "corp.example"
    assert Settings.model_validate({}).live.uid_domain == "blendwise.invalid"


def test_names_cannot_inject_properties_or_components():
    """RFC 5545 §3.2: a parameter value holds no control characters and no DQUOTE; §3.1: content lines end only
    at CRLF. A name crafted to close the event and open another stays one CN parameter."""
    evil = 'Ana"; ROLE=CHAIR:\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nSUMMARY:pwned'
    raw = ics.session_invite(
        uid="u@example.com", title="Title\r\nORGANIZER:mailto:evil@example.com", description="", start=START, end=END,
        url=None, location=None, stamp=STAMP, organizer=ics.Party("mailto:lee@example.com", evil),
        attendee=ics.Party("urn:uuid:0b5e4c9e-4a1e-4d6f-9d0a-1c2b3d4e5f60", evil),
    )
    cal = Calendar.from_ical(raw)
    event = only_event(cal)
    assert str(event["ORGANIZER"]) == "mailto:lee@example.com"
    assert event["ATTENDEE"].params["ROLE"] == "REQ-PARTICIPANT"
    assert event["ATTENDEE"].params["CN"] == "Ana'; ROLE=CHAIR: END:VEVENT BEGIN:VEVENT SUMMARY:pwned"
    assert str(event["SUMMARY"]) == "Title\nORGANIZER:mailto:evil@example.com", "text values are escaped, not cut"
    lines = raw.decode().split("\r\n")
    assert sum(1 for line in lines if line.startswith("BEGIN:VEVENT")) == 1
    assert sum(1 for line in lines if line.startswith("ORGANIZER")) == 1


def test_a_learner_without_an_email_is_named_without_inventing_a_mailbox():
    party = ics.Party.of(None, "Ben", "urn:uuid:0b5e4c9e-4a1e-4d6f-9d0a-1c2b3d4e5f60")
    assert party.address == "urn:uuid:0b5e4c9e-4a1e-4d6f-9d0a-1c2b3d4e5f60"
    assert ics.Party.of("ben@example.com", "Ben", "x").address == "mailto:ben@example.com"
