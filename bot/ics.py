"""Calendar invites (.ics) for live sessions, as iTIP messages (RFC 5545 objects, RFC 5546 methods).

Every invite is one VEVENT addressed to one learner:

* ``METHOD:REQUEST`` (the first invite and every move) carries ``ORGANIZER`` and the learner as ``ATTENDEE``
  (RFC 5546 §3.2.2 requires both), ``STATUS:CONFIRMED`` and the session's revision as ``SEQUENCE``;
* ``METHOD:CANCEL`` carries the same ``UID``, a higher ``SEQUENCE`` and ``STATUS:CANCELLED`` (§3.2.5);
* the ``UID`` never changes for one cohort's session, so a calendar updates the entry it already holds instead of
  adding a second one, and its right-hand side is the installation's own domain (RFC 5545 §3.8.4.7).

Names are person text: they go into the ``CN`` parameter with control characters removed and double quotes
replaced (RFC 5545 §3.2 forbids both in a parameter value), and the icalendar library quotes the value and folds
long lines, so no name can start a property or a component of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # icalendar is imported where an invite is written: most starts never write one
    from icalendar import vCalAddress

#: RSVP answers as iCalendar participation states (RFC 5545 §3.2.12). A waiting-list place is not an acceptance.
PARTSTAT = {"yes": "ACCEPTED", "maybe": "TENTATIVE", "no": "DECLINED"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class Party:
    """An organizer or attendee: a calendar user address (``mailto:`` when the email is known) and a name."""

    address: str
    name: str = ""

    @classmethod
    def of(cls, email: str | None, name: str, fallback: str) -> Party:
        """``mailto:<email>`` when known, else ``fallback`` (a URI that names the person without inventing a
        mailbox)."""
        return cls(f"mailto:{email}" if email else fallback, name)

    def value(self, **params: str) -> vCalAddress:
        from icalendar import vCalAddress, vText

        address = vCalAddress(self.address)
        name = param_text(self.name)
        if name:
            address.params["CN"] = vText(name)
        for key, val in params.items():
            address.params[key] = vText(val)
        return address


def param_text(text: str, limit: int = 100) -> str:
    """Person text made safe for a parameter value: no control characters (a newline would end the property), no
    double quote (it would end the quoted value), at most ``limit`` characters."""
    return _CONTROL.sub(" ", text).replace('"', "'").strip()[:limit]


def uid(cohort_id: int, step_id: str, domain: str) -> str:
    """The session's calendar UID for one installation: stable across moves, unique across installations."""
    return f"blendwise-{cohort_id}-{step_id}@{domain}"


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
    organizer: Party,
    attendee: Party,
    rsvp: str | None = None,
    sequence: int = 0,
    cancelled: bool = False,
) -> bytes:
    """One iTIP message for one attendee: a REQUEST, or a CANCEL when ``cancelled``. Times are written in UTC."""
    from icalendar import Calendar, Event, vText

    cal = Calendar()
    cal.add("prodid", "-//Blendwise//Live sessions//EN")
    cal.add("version", "2.0")
    cal.add("method", "CANCEL" if cancelled else "REQUEST")
    event = Event()
    event.add("uid", uid)
    event.add("summary", title)
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("dtstamp", stamp)
    event.add("sequence", sequence)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("organizer", organizer.value())
    partstat = PARTSTAT.get(rsvp or "", "NEEDS-ACTION")
    event.add(
        "attendee", attendee.value(ROLE="REQ-PARTICIPANT", PARTSTAT=partstat, RSVP="TRUE", CUTYPE="INDIVIDUAL")
    )
    if description:
        event.add("description", description)
    if url:
        event.add("url", url)
    if location or url:
        event["location"] = vText(location or url or "")
    cal.add_component(event)
    return cal.to_ical()
