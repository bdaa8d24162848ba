"""Delivery windows: working days and hours, quiet hours, pauses and DST, on plain datetimes (no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from bot.timewindow import Window, local_instant, zone

WEEKDAYS = frozenset(range(5))
EVERY_DAY = frozenset(range(7))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def office(tz: str = "Europe/London", **kw: object) -> Window:
    """The default policy: 09:00-17:30 Monday to Friday, quiet 20:00-08:00."""
    params: dict[str, object] = {
        "tz": tz,
        "start": time(9, 0),
        "end": time(17, 30),
        "weekdays": WEEKDAYS,
        "quiet_start": time(20, 0),
        "quiet_end": time(8, 0),
    }
    params.update(kw)
    return Window(**params)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- working hours
@pytest.mark.parametrize(
    ("instant", "inside"),
    [
        (utc(2026, 3, 2, 9, 0), True),  # Monday 09:00 London (GMT): the first minute of the day
        (utc(2026, 3, 2, 8, 59), False),
        (utc(2026, 3, 2, 17, 29), True),
        (utc(2026, 3, 2, 17, 30), False),  # the end is exclusive
        (utc(2026, 3, 6, 12, 0), True),  # Friday
        (utc(2026, 3, 7, 12, 0), False),  # Saturday
        (utc(2026, 3, 8, 12, 0), False),  # Sunday
    ],
)
def test_contains_working_days_and_hours(instant: datetime, inside: bool) -> None:
    assert office().contains(instant) is inside


def test_contains_uses_the_persons_zone() -> None:
    # 14:00 UTC on a Monday is 09:00 in New York (EST, UTC-5): just inside. 13:59 UTC is not.
    ny = office("America/New_York")
    assert ny.contains(utc(2026, 3, 2, 14, 0))
    assert not ny.contains(utc(2026, 3, 2, 13, 59))
    # 22:00 UTC is 17:00 in New York (inside) but 22:00 in London (outside).
    assert ny.contains(utc(2026, 3, 2, 22, 0))
    assert not office().contains(utc(2026, 3, 2, 22, 0))


def test_next_open_inside_the_window_is_the_instant_itself() -> None:
    instant = utc(2026, 3, 3, 11, 17)
    assert office().next_open(instant) == instant


def test_next_open_before_hours_waits_for_the_opening() -> None:
    assert office().next_open(utc(2026, 3, 3, 6, 0)) == utc(2026, 3, 3, 9, 0)


def test_next_open_after_hours_on_friday_is_monday_morning() -> None:
    assert office().next_open(utc(2026, 3, 6, 18, 0)) == utc(2026, 3, 9, 9, 0)
    assert office().next_open(utc(2026, 3, 7, 10, 0)) == utc(2026, 3, 9, 9, 0)


def test_next_open_new_york_is_the_local_opening_in_utc() -> None:
    # Saturday -> Monday 09:00 EST = 14:00 UTC.
    assert office("America/New_York").next_open(utc(2026, 2, 28, 12, 0)) == utc(2026, 3, 2, 14, 0)


def test_custom_working_days() -> None:
    sun_to_thu = office("Asia/Dubai", weekdays=frozenset({6, 0, 1, 2, 3}))
    # Friday 10:00 Dubai (06:00 UTC) is a weekend there; Sunday 09:00 Dubai (05:00 UTC) is a working day.
    assert not sun_to_thu.contains(utc(2026, 3, 6, 6, 0))
    assert sun_to_thu.next_open(utc(2026, 3, 6, 6, 0)) == utc(2026, 3, 8, 5, 0)


# ---------------------------------------------------------------------------------------------------- quiet hours
def test_quiet_hours_spanning_midnight() -> None:
    always = office(
        start=time(0, 0), end=time(23, 59), weekdays=EVERY_DAY, quiet_start=time(22, 0), quiet_end=time(7, 0)
    )
    assert always.contains(utc(2026, 3, 2, 21, 59))
    assert not always.contains(utc(2026, 3, 2, 22, 0))
    assert not always.contains(utc(2026, 3, 2, 23, 30))
    assert not always.contains(utc(2026, 3, 3, 0, 30))  # after midnight: still quiet
    assert not always.contains(utc(2026, 3, 3, 6, 59))
    assert always.contains(utc(2026, 3, 3, 7, 0))
    assert always.next_open(utc(2026, 3, 2, 23, 0)) == utc(2026, 3, 3, 7, 0)


def test_quiet_hours_within_a_day() -> None:
    lunch = office(quiet_start=time(12, 0), quiet_end=time(13, 0))
    assert lunch.contains(utc(2026, 3, 2, 11, 59))
    assert not lunch.contains(utc(2026, 3, 2, 12, 30))
    assert lunch.next_open(utc(2026, 3, 2, 12, 0)) == utc(2026, 3, 2, 13, 0)


def test_quiet_hours_overlapping_the_working_day_push_the_opening() -> None:
    late_start = office(quiet_start=time(20, 0), quiet_end=time(10, 0))
    assert not late_start.contains(utc(2026, 3, 2, 9, 30))
    assert late_start.next_open(utc(2026, 3, 2, 7, 0)) == utc(2026, 3, 2, 10, 0)


def test_no_quiet_hours() -> None:
    window = office(start=time(0, 0), end=time(23, 59), weekdays=EVERY_DAY, quiet_start=None, quiet_end=None)
    assert window.contains(utc(2026, 3, 2, 3, 0))


# ---------------------------------------------------------------------------------------------------- pauses
def test_pause_holds_until_it_ends_then_the_window_applies() -> None:
    paused = office(paused_until=utc(2026, 3, 4, 12, 0))  # until Wednesday noon
    assert not paused.contains(utc(2026, 3, 3, 10, 0))
    assert not paused.contains(utc(2026, 3, 4, 11, 59))
    assert paused.contains(utc(2026, 3, 4, 12, 0))
    assert paused.next_open(utc(2026, 3, 2, 10, 0)) == utc(2026, 3, 4, 12, 0)


def test_pause_ending_on_a_weekend_opens_on_monday() -> None:
    paused = office(paused_until=utc(2026, 3, 7, 0, 0))  # until Saturday
    assert paused.next_open(utc(2026, 3, 3, 10, 0)) == utc(2026, 3, 9, 9, 0)


def test_pause_in_the_past_changes_nothing() -> None:
    paused = office(paused_until=utc(2026, 3, 1, 0, 0))
    assert paused.contains(utc(2026, 3, 2, 10, 0))


# ---------------------------------------------------------------------------------------------------- DST
def test_spring_forward_gap_london_moves_past_the_gap() -> None:
    # 29 March 2026: London clocks go 01:00 GMT -> 02:00 BST; 01:30 does not exist.
    result = local_instant(date(2026, 3, 29), time(1, 30), "Europe/London")
    local = result.astimezone(zone("Europe/London"))
    assert result == utc(2026, 3, 29, 1, 30)
    assert (local.hour, local.minute) == (2, 30)
    assert local.utcoffset() == timedelta(hours=1)
    # It is a real wall time: it round-trips.
    assert local_instant(local.date(), local.time().replace(tzinfo=None), "Europe/London") == result


def test_spring_forward_gap_new_york_moves_past_the_gap() -> None:
    # 8 March 2026: New York clocks go 02:00 EST -> 03:00 EDT; 02:30 does not exist.
    result = local_instant(date(2026, 3, 8), time(2, 30), "America/New_York")
    local = result.astimezone(zone("America/New_York"))
    assert result == utc(2026, 3, 8, 7, 30)
    assert (local.hour, local.minute) == (3, 30)
    assert local.utcoffset() == timedelta(hours=-4)


def test_gap_day_times_outside_the_gap_are_exact() -> None:
    assert local_instant(date(2026, 3, 29), time(0, 59), "Europe/London") == utc(2026, 3, 29, 0, 59)
    assert local_instant(date(2026, 3, 29), time(2, 0), "Europe/London") == utc(2026, 3, 29, 1, 0)


@pytest.mark.parametrize(
    ("day", "tz", "first"),
    [
        (date(2026, 10, 25), "Europe/London", utc(2026, 10, 25, 0, 30)),  # 01:30 BST, not 01:30 GMT
        (date(2026, 11, 1), "America/New_York", utc(2026, 11, 1, 5, 30)),  # 01:30 EDT, not 01:30 EST
    ],
)
def test_autumn_overlap_takes_the_first_occurrence(day: date, tz: str, first: datetime) -> None:
    assert local_instant(day, time(1, 30), tz) == first


@pytest.mark.parametrize(
    ("tz", "before", "after"),
    [
        # London: Friday 27 March 09:00 GMT = 09:00 UTC; Monday 30 March 09:00 BST = 08:00 UTC.
        (
            "Europe/London",
            (date(2026, 3, 27), utc(2026, 3, 27, 9, 0)),
            (date(2026, 3, 30), utc(2026, 3, 30, 8, 0)),
        ),
        # New York: Friday 6 March 09:00 EST = 14:00 UTC; Monday 9 March 09:00 EDT = 13:00 UTC.
        (
            "America/New_York",
            (date(2026, 3, 6), utc(2026, 3, 6, 14, 0)),
            (date(2026, 3, 9), utc(2026, 3, 9, 13, 0)),
        ),
        # Autumn, London: Friday 23 October 09:00 BST = 08:00 UTC; Monday 26 October 09:00 GMT = 09:00 UTC.
        (
            "Europe/London",
            (date(2026, 10, 23), utc(2026, 10, 23, 8, 0)),
            (date(2026, 10, 26), utc(2026, 10, 26, 9, 0)),
        ),
        # Autumn, New York: Friday 30 October 09:00 EDT = 13:00 UTC; Monday 2 November 09:00 EST = 14:00 UTC.
        (
            "America/New_York",
            (date(2026, 10, 30), utc(2026, 10, 30, 13, 0)),
            (date(2026, 11, 2), utc(2026, 11, 2, 14, 0)),
        ),
    ],
)
def test_nine_local_stays_nine_local_across_the_change(
    tz: str, before: tuple[date, datetime], after: tuple[date, datetime]
) -> None:
    assert local_instant(before[0], time(9, 0), tz) == before[1]
    assert local_instant(after[0], time(9, 0), tz) == after[1]
    assert abs(after[1].hour - before[1].hour) == 1  # the UTC hour shifts by one
    window = office(tz)
    # The window opens at 09:00 local on both sides: from the Friday evening, the next opening is Monday 09:00.
    friday_evening = before[1] + timedelta(hours=10)
    assert window.next_open(friday_evening) == after[1]
    assert window.contains(after[1]) and not window.contains(after[1] - timedelta(minutes=1))


def test_window_on_the_gap_day_itself() -> None:
    # An every-day window opening at 01:30 on the spring-forward Sunday opens right after the gap.
    window = office(start=time(1, 30), end=time(23, 0), weekdays=EVERY_DAY, quiet_start=None, quiet_end=None)
    opened = window.next_open(utc(2026, 3, 29, 0, 0))
    assert opened.astimezone(zone("Europe/London")).time() >= time(2, 0)
    assert opened <= utc(2026, 3, 29, 1, 30)
    assert window.contains(opened)
