"""The compiled cron engine (services/core/cron.py): its parsing, field rules and zone periods.

Among them the cases where croniter differs from Vixie cron and the engine follows Vixie: `N-N`
ranges (croniter 7 widens them to '*'), day fields that start with '*' but are not '*' (croniter
ORs them), and `fri-sun`. tests/core/test_cron.py holds the shared expectations and DST rules.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import ModuleType
from zoneinfo import ZoneInfo

import pytest

from services.core import cron
from services.core.errors import UserError


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local_times(impl: ModuleType, expression: str, zone: str, start: datetime, end: datetime) -> list[str]:
    tz = ZoneInfo(zone)
    return [t.astimezone(tz).isoformat() for t in impl.fire_times(expression, zone, start, end)]


def days(expression: str, start: datetime, end: datetime) -> list[str]:
    """Engine fire times in UTC as 'Mon 06-01' strings."""
    return [t.strftime("%a %m-%d") for t in cron.fire_times(expression, "UTC", start, end)]


# --- parsing and field rules (engine) --------------------------------------------------------


def test_fields_compile_to_bitmasks() -> None:
    compiled = cron.compile_expression("0,30 9-17/4 1-31/10 JAN,jul-aug mon-wed,7")
    assert compiled.expression == "0,30 9-17/4 1-31/10 jan,jul-aug mon-wed,7"
    assert compiled.minutes == 1 << 0 | 1 << 30
    assert compiled.hours == 1 << 9 | 1 << 13 | 1 << 17
    assert compiled.days == 1 << 1 | 1 << 11 | 1 << 21 | 1 << 31
    assert compiled.months == 1 << 1 | 1 << 7 | 1 << 8
    assert compiled.weekdays == 1 << 0 | 1 << 1 | 1 << 2 | 1 << 3  # 7 is Sunday (0)
    assert compiled.fixed_time and not compiled.both_days


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # A single-value range is that value (croniter 7 widens these to '*').
        ("0 5-5 * * *", ["05:00", "05:00"]),
        ("0-0 3 * * *", ["03:00", "03:00"]),
        ("15 10 * * *", ["10:15", "10:15"]),
    ],
)
def test_single_value_ranges_mean_that_value(expression: str, expected: list[str]) -> None:
    times = cron.fire_times(expression, "UTC", utc(2026, 6, 1), utc(2026, 6, 2, 23, 59))
    assert [t.strftime("%H:%M") for t in times] == expected


def test_single_value_day_and_month_ranges() -> None:
    assert days("0 0 * * sun-sun", utc(2026, 6, 1), utc(2026, 6, 21)) == ["Sun 06-07", "Sun 06-14", "Sun 06-21"]
    assert days("0 0 * * 7-7", utc(2026, 6, 1), utc(2026, 6, 14)) == ["Sun 06-07", "Sun 06-14"]
    assert days("0 0 1 nov-nov *", utc(2026, 1, 1), utc(2027, 12, 31)) == ["Sun 11-01", "Mon 11-01"]
    assert days("0 0 31-31 * *", utc(2026, 1, 1), utc(2026, 5, 31)) == ["Sat 01-31", "Tue 03-31", "Sun 05-31"]


def test_seven_and_ranges_ending_in_sun_mean_sunday() -> None:
    week = utc(2026, 6, 1), utc(2026, 6, 7, 23, 59)  # Monday to Sunday
    assert days("0 0 * * 7", *week) == ["Sun 06-07"]
    assert days("0 0 * * fri-sun", *week) == ["Fri 06-05", "Sat 06-06", "Sun 06-07"]
    assert days("0 0 * * 5-7", *week) == ["Fri 06-05", "Sat 06-06", "Sun 06-07"]
    assert days("0 0 * * mon-sun/2", *week) == ["Mon 06-01", "Wed 06-03", "Fri 06-05", "Sun 06-07"]
    assert days("0 0 * * sun-sat", *week) == [f"{d} 06-0{n}" for n, d in enumerate(
        ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], start=1)]


def test_steps_start_at_the_field_minimum() -> None:
    assert days("0 0 */10 * *", utc(2026, 1, 1), utc(2026, 1, 31, 23)) == [
        "Thu 01-01", "Sun 01-11", "Wed 01-21", "Sat 01-31"]
    times = cron.fire_times("*/25 */9 * * *", "UTC", utc(2026, 1, 1), utc(2026, 1, 1, 23, 59))
    assert [t.strftime("%H:%M") for t in times] == [
        "00:00", "00:25", "00:50", "09:00", "09:25", "09:50", "18:00", "18:25", "18:50"]


def test_vixie_day_rule_both_restricted_is_either() -> None:
    # The 1st or the 15th, or any Monday.
    assert days("0 0 1,15 * mon", utc(2026, 6, 1), utc(2026, 6, 22)) == [
        "Mon 06-01", "Mon 06-08", "Mon 06-15", "Mon 06-22"]
    assert days("0 0 13 * fri", utc(2026, 2, 1), utc(2026, 2, 28)) == [
        "Fri 02-06", "Fri 02-13", "Fri 02-20", "Fri 02-27"]


def test_vixie_day_rule_a_field_starting_with_star_means_both() -> None:
    # Odd days that are Mondays (croniter ORs '*/2' with 'mon': every odd day and every Monday).
    assert days("0 0 */2 * mon", utc(2026, 6, 1), utc(2026, 6, 30)) == ["Mon 06-01", "Mon 06-15", "Mon 06-29"]
    # The 1st and 15th, on any weekday ('*/1' is all days, and it starts with '*').
    assert days("0 0 1,15 * */1", utc(2026, 6, 1), utc(2026, 6, 30)) == ["Mon 06-01", "Mon 06-15"]
    # Plain '*' in either field: the other field decides.
    assert days("0 0 * * mon", utc(2026, 6, 1), utc(2026, 6, 15)) == ["Mon 06-01", "Mon 06-08", "Mon 06-15"]
    assert days("0 0 15 * *", utc(2026, 6, 1), utc(2026, 7, 31)) == ["Mon 06-15", "Wed 07-15"]


def test_sparse_day_rules_reach_decades_ahead() -> None:
    # Feb 29 that is a Sunday: 2032, then 2060.
    assert cron.next_fire_time("0 0 29 2 */7", "UTC", utc(2026, 1, 1)) == utc(2032, 2, 29)
    assert cron.next_fire_time("0 0 29 2 */7", "UTC", utc(2032, 2, 29)) == utc(2060, 2, 29)
    # 2100 is not a leap year: the gap after 2088 is 40 years, the longest the calendar has.
    assert cron.next_fire_time("0 0 29 2 */7", "UTC", utc(2088, 3, 1)) == utc(2128, 2, 29)
    assert cron.next_fire_times("0 0 29 2 */7", "UTC", utc(2026, 1, 1), 5) == [
        utc(2032, 2, 29), utc(2060, 2, 29), utc(2088, 2, 29), utc(2128, 2, 29), utc(2156, 2, 29)
    ]
    # Friday the 13th ORed: the next Friday, or the 13th.
    assert cron.next_fire_time("0 0 13 * fri", "UTC", utc(2026, 2, 7)) == utc(2026, 2, 13)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 0 * * sun-fri-sat", "not valid cron syntax"),
        ("0 0 * * sat-fri", "range sat-fri runs backwards"),
        ("0 0 * * 5-0", "range 5-0 runs backwards"),
        ("0 0 31 2,4,6 *", "never fires"),
        ("0 0 30-31 2 */2", "never fires"),
        ("0 0 1 jan mon,tue,wed,", "not valid cron syntax"),
    ],
)
def test_engine_only_refusals(expression: str, message: str) -> None:
    with pytest.raises(UserError) as caught:
        cron.validate_expression(expression)
    assert caught.value.field == "cron" and message in caught.value.message


@pytest.mark.parametrize("expression", ["0 0 * * fri-sun", "0 0 30 2 mon", "0 0 29 2 */7", "0 5-5 * * sun-sun"])
def test_engine_accepts_what_vixie_cron_accepts(expression: str) -> None:
    assert cron.validate_expression(expression) == expression


def test_compiled_pairs_are_cached() -> None:
    first = cron.compile_schedule("7 7 * * *", "Europe/Berlin")
    assert cron.compile_schedule("7 7 * * *", "Europe/Berlin") is first
    with pytest.raises(UserError) as caught:
        cron.next_fire_time("7 7 * * *", "Mars/Olympus", utc(2026, 1, 1))
    assert caught.value.field == "timezone"


def test_zone_transitions_are_found_to_the_second() -> None:
    year = cron.zone_year(ZoneInfo("Australia/Lord_Howe"), 2026)
    assert [datetime.fromtimestamp(t, UTC) for t in year.times] == [utc(2026, 4, 4, 15), utc(2026, 10, 3, 15, 30)]
    assert (year.before, year.after) == ((11 * 3600, 10 * 3600 + 1800), (10 * 3600 + 1800, 11 * 3600))
    assert cron.zone_year(ZoneInfo("Asia/Kolkata"), 2026).times == ()


# --- zones with transitions at midnight, odd offsets, and year ends (engine) ----------------


@pytest.mark.parametrize(
    ("zone", "expression", "start", "end", "expected"),
    [
        # Santiago 2026-04-05 00:00 -03 -> 2026-04-04 23:00 -04: 23:00-23:59 of Apr 4 repeats.
        ("America/Santiago", "30 23 * * *", utc(2026, 4, 4, 12), utc(2026, 4, 6, 12),
         ["2026-04-04T23:30:00-03:00", "2026-04-05T23:30:00-04:00"]),
        ("America/Santiago", "*/30 23 * * *", utc(2026, 4, 4, 12), utc(2026, 4, 5, 12),
         ["2026-04-04T23:00:00-03:00", "2026-04-04T23:30:00-03:00",
          "2026-04-04T23:00:00-04:00", "2026-04-04T23:30:00-04:00"]),
        # Santiago 2026-09-06 00:00 -04 -> 01:00 -03: the whole 00 hour of Sep 6 is skipped.
        ("America/Santiago", "30 0 * * *", utc(2026, 9, 5, 12), utc(2026, 9, 7, 12),
         ["2026-09-06T01:00:00-03:00", "2026-09-07T00:30:00-03:00"]),
        ("America/Santiago", "30 0 6 9 *", utc(2026, 9, 1), utc(2026, 9, 30), ["2026-09-06T01:00:00-03:00"]),
        ("America/Santiago", "*/30 0 * * *", utc(2026, 9, 5, 12), utc(2026, 9, 6, 12), []),
        # Chatham 2026-09-27 02:45 +12:45 -> 03:45 +13:45.
        ("Pacific/Chatham", "0 3 * * *", utc(2026, 9, 25), utc(2026, 9, 27, 12),
         ["2026-09-26T03:00:00+12:45", "2026-09-27T03:45:00+13:45"]),
        ("Pacific/Chatham", "*/20 3 * * *", utc(2026, 9, 26, 13), utc(2026, 9, 26, 16), []),
        # Chatham 2026-04-05 03:45 +13:45 -> 02:45 +12:45: 02:45-03:44 repeats.
        ("Pacific/Chatham", "50 2 * * *", utc(2026, 4, 4), utc(2026, 4, 5, 12), ["2026-04-05T02:50:00+13:45"]),
        ("Pacific/Chatham", "10,50 2,3 * * *", utc(2026, 4, 4), utc(2026, 4, 5, 12),
         ["2026-04-05T02:10:00+13:45", "2026-04-05T02:50:00+13:45", "2026-04-05T03:10:00+13:45",
          "2026-04-05T03:50:00+12:45"]),
        # New Year's in zones far from UTC (the engine keeps its transition tables per UTC year).
        ("Pacific/Chatham", "0 0 1 1 *", utc(2026, 12, 1), utc(2027, 1, 31), ["2027-01-01T00:00:00+13:45"]),
        ("Asia/Kolkata", "59 23 31 12 *", utc(2026, 1, 1), utc(2027, 12, 31),
         ["2026-12-31T23:59:00+05:30"]),
        ("America/Santiago", "0 0 1 1 *", utc(2026, 12, 31), utc(2027, 1, 2), ["2027-01-01T00:00:00-03:00"]),
    ],
)
def test_engine_dst_rules_in_more_zones(zone, expression, start, end, expected) -> None:
    assert local_times(cron, expression, zone, start, end) == expected
