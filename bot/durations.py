"""Human durations: ``90s``, ``15m``, ``2h``, ``1h30m``, ``3d``, ``1w``."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)\s*(w|d|h|m|s)", re.IGNORECASE)
_WHOLE = re.compile(r"^\s*(?:\d+\s*[wdhms]\s*)+$", re.IGNORECASE)
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
#: The longest duration anything in Blendwise means: a due date, a reminder or a snooze a year away is the limit.
MAX_WEEKS = 52
MAX_SECONDS = MAX_WEEKS * _UNITS["w"]


def parse_duration(text: str) -> timedelta:
    """Parse ``text`` into a timedelta.

    Raises:
        ValueError: with a message a person can act on.
    """
    if isinstance(text, int | float):
        raise ValueError(f"duration {text!r} needs a unit, for example '{int(text)}m' or '{int(text)}d'")
    if not isinstance(text, str) or not _WHOLE.match(text):
        raise ValueError(f"'{text}' is not a duration; use forms like 15m, 2h, 1h30m, 3d, 1w")
    parts = _PART.findall(text)
    # Bounded before any arithmetic: ``9999999999w`` would overflow timedelta (and a date-time after it).
    if any(len(n) > 9 for n, _ in parts) or sum(int(n) * _UNITS[u.lower()] for n, u in parts) > MAX_SECONDS:
        raise ValueError(f"duration '{text.strip()}' is too long; at most {MAX_WEEKS}w (a year)")
    return timedelta(seconds=sum(int(n) * _UNITS[u.lower()] for n, u in parts))


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    if seconds or not out:
        out.append(f"{seconds}s")
    return "".join(out)
