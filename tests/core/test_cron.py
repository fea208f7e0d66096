"""Cron math: syntax, time zones and every DST rule of the README, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.core import cron
from services.core.errors import UserError


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local_times(expression: str, zone: str, start: datetime, end: datetime) -> list[str]:
    """Fire times in [start, end] as local ISO strings with their offsets."""
    tz = ZoneInfo(zone)
    return [t.astimezone(tz).isoformat() for t in cron.fire_times(expression, zone, start, end)]


# --- syntax ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "expression",
    [
        "* * * * *",
        "*/15 * * * *",
        "0 9-17 * * mon-fri",
        "0,30 8,20 1,15 * *",
        "5 4 * jan,jul sun",
        "0 0 1-31/2 * *",
        "0 12 * * 7",
        "0 0 * DEC SAT",
    ],
)
def test_standard_syntax_is_accepted(expression: str) -> None:
    assert cron.validate_expression(expression) == " ".join(expression.lower().split())


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "has 4 fields"),
        ("0 0 0 * * *", "has 6 fields"),
        ("0 0 L * *", "day of month field"),
        ("0 0 * * 5#3", "day of week field"),
        ("0 0 ? * *", "day of month field"),
        ("60 * * * *", "minute field: 60 is outside 0-59"),
        ("0 24 * * *", "hour field: 24 is outside 0-23"),
        ("0 0 0 * *", "day of month field: 0 is outside 1-31"),
        ("0 0 * 13 *", "month field: 13 is outside 1-12"),
        ("0 0 * * 8", "day of week field: 8 is outside 0-7"),
        ("*/0 * * * *", "a step of 0"),
        ("30-10 * * * *", "runs backwards"),
        ("5/10 * * * *", "a step needs"),
        ("0 0 30 2 *", "never fires"),
        ("@daily", "has 1 fields"),
        ("0 0 * foo *", "month field"),
    ],
)
def test_invalid_expressions_name_the_field(expression: str, message: str) -> None:
    with pytest.raises(UserError) as caught:
        cron.validate_expression(expression)
    assert caught.value.field == "cron"
    assert message in caught.value.message


# `localtime` follows the host (the API and the dispatcher could disagree); `right/` zones count
# leap seconds; neither is an IANA zone name, though tzdata folders hold them.
@pytest.mark.parametrize(
    "zone", ["Mars/Olympus", "", "../etc/passwd", "utc ", "localtime", "posixrules", "Factory", "right/UTC",
             "posix/Europe/Berlin"],
)
def test_unknown_time_zones_are_refused(zone: str) -> None:
    with pytest.raises(UserError) as caught:
        cron.validate_timezone(zone)
    assert caught.value.field == "timezone"


@pytest.mark.parametrize(
    ("expression", "fixed"),
    [("30 2 * * *", True), ("0 1-3 * * *", True), ("*/30 * * * *", False), ("*/5 2 * * *", False), ("0 * * * *", False)],
)
def test_fixed_time_classification(expression: str, fixed: bool) -> None:
    assert cron.is_fixed_time(expression) is fixed


def test_ranges_steps_lists_and_names() -> None:
    times = cron.fire_times("0 9-17/4 * * mon,wed", "UTC", utc(2026, 11, 30), utc(2026, 12, 3))
    assert [t.isoformat() for t in times] == [
        "2026-11-30T09:00:00+00:00", "2026-11-30T13:00:00+00:00", "2026-11-30T17:00:00+00:00",
        "2026-12-02T09:00:00+00:00", "2026-12-02T13:00:00+00:00", "2026-12-02T17:00:00+00:00",
    ]


def test_day_of_month_and_day_of_week_are_ored_like_vixie_cron() -> None:
    # The 1st of the month OR any Monday.
    times = cron.fire_times("0 0 1 * mon", "UTC", utc(2026, 6, 1), utc(2026, 6, 15))
    assert [t.day for t in times] == [1, 8, 15]


def test_time_zone_is_applied() -> None:
    times = cron.fire_times("0 9 * * *", "America/New_York", utc(2026, 1, 10), utc(2026, 1, 11))
    assert [t.isoformat() for t in times] == ["2026-01-10T14:00:00+00:00"]


def test_next_fire_time_is_strictly_after() -> None:
    assert cron.next_fire_time("*/5 * * * *", "UTC", utc(2026, 1, 1, 0, 5)) == utc(2026, 1, 1, 0, 10)
    assert cron.next_fire_time("*/5 * * * *", "UTC", utc(2026, 1, 1, 0, 5, 30)) == utc(2026, 1, 1, 0, 10)


def test_sparse_expression_finds_leap_day() -> None:
    assert cron.next_fire_time("0 0 29 2 *", "UTC", utc(2026, 3, 1)) == utc(2028, 2, 29)


# --- DST: spring forward -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("zone", "expression", "start", "end", "expected"),
    [
        # Berlin 2026-03-29: 02:00 CET -> 03:00 CEST. A daily 02:30 still runs, at 03:00.
        ("Europe/Berlin", "30 2 * * *", utc(2026, 3, 28, 12), utc(2026, 3, 30, 12),
         ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]),
        # New York 2026-03-08: 02:00 EST -> 03:00 EDT.
        ("America/New_York", "30 2 * * *", utc(2026, 3, 7, 12), utc(2026, 3, 9, 12),
         ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]),
        # Lord Howe 2026-10-04: 02:00 +10:30 -> 02:30 +11 (a 30-minute shift).
        ("Australia/Lord_Howe", "15 2 * * *", utc(2026, 10, 3), utc(2026, 10, 5),
         ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"]),
        # Two fixed times in the gap land on the same instant: one fire time.
        ("Europe/Berlin", "0,30 2 * * *", utc(2026, 3, 29, 0), utc(2026, 3, 29, 3),
         ["2026-03-29T03:00:00+02:00"]),
    ],
)
def test_spring_forward_fixed_time_runs_once_after_the_gap(zone, expression, start, end, expected) -> None:
    assert local_times(expression, zone, start, end) == expected


@pytest.mark.parametrize(
    ("zone", "expression", "start", "end", "expected"),
    [
        ("Europe/Berlin", "*/30 * * * *", utc(2026, 3, 29, 0), utc(2026, 3, 29, 1, 30),
         ["2026-03-29T01:00:00+01:00", "2026-03-29T01:30:00+01:00",
          "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"]),
        ("America/New_York", "*/30 * * * *", utc(2026, 3, 8, 6), utc(2026, 3, 8, 7, 30),
         ["2026-03-08T01:00:00-05:00", "2026-03-08T01:30:00-05:00",
          "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"]),
        # Wildcard minutes in a fixed hour: the hour that does not exist does not fire.
        ("Europe/Berlin", "*/5 2 * * *", utc(2026, 3, 28, 23), utc(2026, 3, 29, 4), []),
        ("Australia/Lord_Howe", "*/15 * * * *", utc(2026, 10, 3, 15), utc(2026, 10, 3, 16),
         ["2026-10-04T01:30:00+10:30", "2026-10-04T01:45:00+10:30",
          "2026-10-04T02:30:00+11:00", "2026-10-04T02:45:00+11:00", "2026-10-04T03:00:00+11:00"]),
    ],
)
def test_spring_forward_wildcard_times_in_the_gap_do_not_occur(zone, expression, start, end, expected) -> None:
    assert local_times(expression, zone, start, end) == expected


# --- DST: fall back ------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("zone", "expression", "start", "end", "expected"),
    [
        # Berlin 2026-10-25: 03:00 CEST -> 02:00 CET; 02:30 happens twice, runs in the first pass.
        ("Europe/Berlin", "30 2 * * *", utc(2026, 10, 24, 12), utc(2026, 10, 26, 12),
         ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]),
        # New York 2026-11-01: 02:00 EDT -> 01:00 EST.
        ("America/New_York", "30 1 * * *", utc(2026, 10, 31, 12), utc(2026, 11, 2, 12),
         ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]),
        # Lord Howe 2026-04-05: 02:00 +11 -> 01:30 +10:30.
        ("Australia/Lord_Howe", "45 1 * * *", utc(2026, 4, 4), utc(2026, 4, 6),
         ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"]),
    ],
)
def test_fall_back_fixed_time_fires_once_in_the_first_pass(zone, expression, start, end, expected) -> None:
    assert local_times(expression, zone, start, end) == expected


@pytest.mark.parametrize(
    ("zone", "expression", "start", "end", "expected"),
    [
        ("Europe/Berlin", "*/30 * * * *", utc(2026, 10, 25, 0), utc(2026, 10, 25, 1, 30),
         ["2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00",
          "2026-10-25T02:00:00+01:00", "2026-10-25T02:30:00+01:00"]),
        ("America/New_York", "0 * * * *", utc(2026, 11, 1, 4), utc(2026, 11, 1, 7),
         ["2026-11-01T00:00:00-04:00", "2026-11-01T01:00:00-04:00",
          "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"]),
        ("Australia/Lord_Howe", "*/15 1 * * *", utc(2026, 4, 4, 14), utc(2026, 4, 4, 15, 15),
         ["2026-04-05T01:00:00+11:00", "2026-04-05T01:15:00+11:00", "2026-04-05T01:30:00+11:00",
          "2026-04-05T01:45:00+11:00", "2026-04-05T01:30:00+10:30", "2026-04-05T01:45:00+10:30"]),
    ],
)
def test_fall_back_wildcard_fires_at_every_real_instant(zone, expression, start, end, expected) -> None:
    assert local_times(expression, zone, start, end) == expected


def test_fire_times_are_distinct_sorted_utc_instants() -> None:
    times = cron.fire_times("*/30 * * * *", "Europe/Berlin", utc(2026, 10, 24), utc(2026, 10, 26))
    assert list(times) == sorted(set(times))
    assert all(t.tzinfo == UTC for t in times)
    # A normal day has 48 half hours; the fall-back day has 50.
    day = [t for t in times if t.astimezone(ZoneInfo("Europe/Berlin")).date().isoformat() == "2026-10-25"]
    assert len(day) == 50


def test_next_fire_times_walks_across_a_transition() -> None:
    after = utc(2026, 3, 28, 12)
    assert [t.isoformat() for t in cron.next_fire_times("30 2 * * *", "Europe/Berlin", after, 2)] == [
        "2026-03-29T01:00:00+00:00", "2026-03-30T00:30:00+00:00",
    ]
    assert cron.next_fire_time("30 2 * * *", "Europe/Berlin", utc(2026, 3, 29, 1)) == utc(2026, 3, 30, 0, 30)
    assert timedelta(0) < cron.next_fire_time("* * * * *", "UTC", after) - after <= timedelta(minutes=1)
