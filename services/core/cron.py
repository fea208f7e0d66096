"""Cron math: a compiled engine for standard 5-field expressions, IANA time zones, ISC/Vixie rules.

Why compiled: the dispatcher computes a next fire time for every due schedule, and a general
library such as croniter costs ~165 µs per step. Here each expression is parsed once into
bitmasks, each (expression, zone) pair is cached, and a next fire time jumps field by field
(month → day → hour → minute) instead of minute by minute, so a call costs a few microseconds.
Standard library only.

Semantics (README, Schedules; docs/cron.md):

* Fields: minute 0-59, hour 0-23, day of month 1-31, month 1-12 (``jan``-``dec``), day of week
  0-7 (``sun``-``sat``; ``7`` is Sunday, and so is ``sun`` ending a range: ``fri-sun``). Items
  are ``*``, ``N``, ``N-M`` and ``*/S`` / ``N-M/S``, joined by commas. ``N-N`` is just ``N``.
* Vixie's day rule: when the day-of-month or the day-of-week field starts with ``*`` (``*``,
  ``*/2``), a day must match both fields; when both are restricted, either one.
* An expression is *fixed-time* when neither its minute nor its hour field starts with ``*``.
* Spring forward (the wall time does not exist): a fixed-time fire time runs once at the first
  instant after the gap; a wildcard one does not occur.
* Fall back (the wall time happens twice): a fixed-time fire time runs once, in the first pass;
  a wildcard one runs at both instants.
* Fire times that land on the same instant are one fire time.

How the DST rules are applied: the zone's UTC offset is constant between two transitions, so
each such *period* maps wall times to instants one to one (instant = wall - offset). Walking the
periods in order, the first matching wall time inside a period is the next fire time. Wall
times in a spring-forward gap belong to no period (so wildcard ones never occur); a fixed-time
expression fires at the transition instant when some matching wall time lies in the gap; and
after a fall-back a fixed-time expression skips the repeated wall times (its first pass already
had them). Transitions are found once per zone and UTC year by sampling the zone's offset weekly
and bisecting each change to the second.
"""

from __future__ import annotations

import dataclasses
import math
import re
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.core.errors import UserError

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

# (name, lowest, highest, names) per field, in order.
FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, MONTH_NAMES),
    ("day of week", 0, 7, DAY_NAMES),
)

# How far ahead `next_fire_time` looks: a Feb 29 that must also be a given weekday recurs every
# 28 years, except across a century year that is not a leap year (2100, 2200, 2300): 2088, then
# 2128 for a Sunday. 40 years is the longest gap in the Gregorian calendar.
HORIZON_YEARS = 41

_ITEM = re.compile(r"^(?:(\*)|([0-9a-z]+)(?:-([0-9a-z]+))?)(?:/([0-9]+))?$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_MICROSECOND = timedelta(microseconds=1)
_DAY = 86_400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# Longest each month can be (Feb 29), for deciding whether an expression can ever fire.
_MAX_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


# _DAYS_OF_WEEKDAY[f][w]: the days 1-31 (as bits) that fall on weekday w when the 1st is weekday f.
_DAYS_OF_WEEKDAY = tuple(
    tuple(sum(1 << day for day in range(1, 32) if (first + day - 1) % 7 == weekday) for weekday in range(7))
    for first in range(7)
)


# --- parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledCron:
    """One expression as bitmasks: bit i of `minutes` is set when minute i matches, and so on.

    `days` uses bits 1-31, `months` bits 1-12, `weekdays` bits 0-6 (Sunday 0).
    `weekday_days[w]` holds the days 1-31 that match `weekdays` in a month whose 1st is weekday w.
    """

    expression: str
    minutes: int
    hours: int
    days: int
    months: int
    weekdays: int
    both_days: bool  # Vixie: a day must match both day fields (one of them starts with '*')
    fixed_time: bool
    weekday_days: tuple[int, ...]
    day_minutes: int  # bit h * 60 + m is set when hour h and minute m both match
    first_minute: int  # the first matching minute of a day (h * 60 + m)
    month_days: dict[int, int] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def days_in(self, year: int, month: int) -> int:
        """The matching days of one month, as a bitmask (bit d = day d); 0 if the month doesn't match."""
        key = year * 16 + month
        days = self.month_days.get(key)
        if days is None:
            days = 0
            if self.months >> month & 1:
                _, first_weekday, length = _month_info(year, month)
                valid = (1 << (length + 1)) - 2
                by_weekday = self.weekday_days[first_weekday]
                days = (self.days & by_weekday if self.both_days else self.days | by_weekday) & valid
            if len(self.month_days) > 4096:
                self.month_days.clear()
            self.month_days[key] = days
        return days


def _value(token: str, field: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if token.isdigit():
        number = int(token)
    elif token in names:
        number = names.index(token) + (1 if field == "month" else 0)
    else:
        raise UserError("cron", f"{field} field: {token!r} is not a number or name")
    if not low <= number <= high:
        raise UserError("cron", f"{field} field: {number} is outside {low}-{high}")
    return number


# A fleet's expressions share most of their fields (`0`, `*`, `9-17`, `mon-fri`): each field text,
# the weekday table and the minutes of a day are computed once per process, not once per
# expression (a tick compiles every distinct expression it meets).
@lru_cache(maxsize=4096)
def _parse_field(text: str, field: str, low: int, high: int, names: tuple[str, ...]) -> int:
    """One field as a bitmask of its values; raises `UserError` naming the field."""
    mask = 0
    for item in text.split(","):
        match = _ITEM.match(item)
        if not match:
            raise UserError("cron", f"{field} field: {item!r} is not valid cron syntax")
        star, start, end, step_text = match.groups()
        step = 1 if step_text is None else int(step_text)
        if step == 0:
            raise UserError("cron", f"{field} field: a step of 0 never advances")
        if star:
            first, last = low, high
        else:
            first = _value(start, field, low, high, names)
            if end is None:
                if step_text is not None:
                    raise UserError("cron", f"{field} field: a step needs '*' or a range, got {item!r}")
                last = first
            else:
                last = _value(end, field, low, high, names)
                if field == "day of week" and end == "sun" and first > 0:
                    last = 7  # 'fri-sun' runs to the end of the week
                if last < first:
                    raise UserError("cron", f"{field} field: range {start}-{end} runs backwards")
        if step == 1:
            mask |= (1 << (last + 1)) - (1 << first)
        else:
            mask |= sum(1 << number for number in range(first, last + 1, step))
    return mask


@lru_cache(maxsize=16384)
def compile_expression(expression: str) -> CompiledCron:
    """Parse and check an expression once; raises `UserError` naming the field.

    Extensions (``L``, ``#``, ``?``, seconds, ``@daily``) are refused so an expression means the
    same thing here as in any other cron.
    """
    fields = expression.strip().lower().split()
    if len(fields) != 5:
        raise UserError(
            "cron", f"{expression!r} has {len(fields)} fields; expected 5 (minute hour dom month dow)"
        )
    minutes, hours, days, months, weekdays = (
        _parse_field(text, *spec) for text, spec in zip(fields, FIELDS, strict=True)
    )
    if weekdays & (1 << 7):
        weekdays = (weekdays | 1) & 0x7F
    weekday_days = _weekday_days(weekdays)
    day_minutes = _day_minutes(minutes, hours)
    compiled = CompiledCron(
        expression=" ".join(fields),
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=weekdays,
        both_days=fields[2].startswith("*") or fields[4].startswith("*"),
        fixed_time=not fields[0].startswith("*") and not fields[1].startswith("*"),
        weekday_days=weekday_days,
        day_minutes=day_minutes,
        first_minute=_lowest_bit(day_minutes),
    )
    if not _can_fire(compiled):
        raise UserError("cron", f"{expression!r} never fires (no such date)")
    return compiled


@lru_cache(maxsize=128)
def _weekday_days(weekdays: int) -> tuple[int, ...]:
    """For each weekday of the 1st of a month, its days (as bits) on one of `weekdays`."""
    return tuple(
        sum(days_of_weekday[weekday] for weekday in range(7) if weekdays >> weekday & 1)
        for days_of_weekday in _DAYS_OF_WEEKDAY
    )


@lru_cache(maxsize=4096)
def _day_minutes(minutes: int, hours: int) -> int:
    """Bit h * 60 + m set when hour h and minute m both match."""
    return sum(minutes << (hour * 60) for hour in range(24) if hours >> hour & 1)


def _can_fire(compiled: CompiledCron) -> bool:
    """False when no month of the expression has one of its days (e.g. Feb 30).

    When the day-of-month field is restricted but the day of week is not, the date must exist;
    every existing date falls on every weekday in some year (Feb 29 within 40 years).
    Otherwise any weekday or the 1st of a month (which '*/S' always holds) will do.
    """
    if not compiled.both_days or compiled.days & 2:
        return True
    return any(
        compiled.months >> month & 1 and compiled.days & ((1 << (_MAX_DAYS_IN_MONTH[month] + 1)) - 2)
        for month in range(1, 13)
    )


def validate_expression(expression: str) -> str:
    """Check a standard 5-field expression and return it normalised (single spaces, lowercase)."""
    return compile_expression(expression).expression


# Files of a tzdata folder that are not zone names: `localtime` is whatever the host is set to
# (two hosts could compute different fire times), `right/…` clocks count leap seconds.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@lru_cache(maxsize=1024)
def validate_timezone(name: str) -> ZoneInfo:
    """Resolve an IANA time zone name or raise `UserError` naming the field.

    Cached: a tick meets the same few hundred zones in tens of thousands of schedules, and
    `ZoneInfo` itself keeps only the zones something else still holds.
    """
    try:
        # At most 64 characters (the column); a tzdata folder (`Europe`) is an OSError.
        if not name or len(name) > 64 or name != name.strip() or name.startswith("/") or ".." in name:
            raise ValueError
        if name in _NOT_ZONES or name.startswith(("right/", "posix/")):
            raise ValueError
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UserError("timezone", f"{name[:80]!r} is not an IANA time zone (e.g. Europe/Berlin)") from None


def is_fixed_time(expression: str) -> bool:
    """True when neither the minute nor the hour field starts with '*' (ISC cron's rule)."""
    minute, hour = expression.split()[:2]
    return not minute.startswith("*") and not hour.startswith("*")


# --- calendar and wall-clock search ----------------------------------------------------------

_MONTHS: dict[tuple[int, int], tuple[int, int, int]] = {}


def _month_info(year: int, month: int) -> tuple[int, int, int]:
    """(days from 1970-01-01 to the 1st, weekday of the 1st with Sunday 0, length in days)."""
    key = (year, month)
    info = _MONTHS.get(key)
    if info is None:
        ordinal = date(year, month, 1).toordinal()
        length = _DAYS_IN_MONTH[month]
        if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
            length = 29
        info = _MONTHS[key] = (ordinal - _EPOCH_ORDINAL, ordinal % 7, length)
    return info


def _lowest_bit(bits: int) -> int:
    return (bits & -bits).bit_length() - 1


def _civil(day: int) -> tuple[int, int, int]:
    """(year, month, day of month) of a day counted from 1970-01-01."""
    found = _CIVIL.get(day)
    if found is None:
        moment = date.fromordinal(day + _EPOCH_ORDINAL)
        found = (moment.year, moment.month, moment.day)
        if len(_CIVIL) > 100_000:
            _CIVIL.clear()
        _CIVIL[day] = found
    return found


_CIVIL: dict[int, tuple[int, int, int]] = {}


def next_wall_time(compiled: CompiledCron, wall: int, last_year: int) -> int | None:
    """The first matching wall time at or after `wall` (both in seconds since 1970-01-01 on the
    wall clock, `wall` a whole minute), or None past `last_year`.

    Within the same day one shift of the hour-and-minute mask finds it; otherwise the month and
    the day each jump straight to their next matching value, carrying into the next year or
    month when none is left, and the day's first matching minute is taken.
    """
    # The first test is the hot path of every call: the caches are read inline, not through
    # `_civil`, `days_in` and `_lowest_bit` (a call costs as much as the arithmetic here).
    day, rest = divmod(wall, _DAY)
    year, month, day_of_month = _CIVIL.get(day) or _civil(day)
    days = compiled.month_days.get(year * 16 + month)
    if days is None:
        days = compiled.days_in(year, month)
    if days >> day_of_month & 1:
        bits = compiled.day_minutes >> (rest // 60)
        if bits:
            return wall + ((bits & -bits).bit_length() - 1) * 60
    day_of_month += 1
    while year <= last_year:
        bits = compiled.months >> month
        if not bits:
            year, month, day_of_month = year + 1, 1, 1
            continue
        if not bits & 1:
            month, day_of_month = month + _lowest_bit(bits), 1
        bits = compiled.days_in(year, month) >> day_of_month
        if not bits:
            month, day_of_month = month + 1, 1
            continue
        day_of_month += _lowest_bit(bits)
        return (_month_info(year, month)[0] + day_of_month - 1) * _DAY + compiled.first_minute * 60
    return None


# --- zone transitions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZoneYear:
    """A zone's UTC offset changes over one UTC year, and the day before it (all in seconds).

    `times[i]` is the first instant with offset `after[i]`; before it the offset was `before[i]`.
    `offset` holds before the first change; `end` is the next year's first instant.
    `periods[i]` describes the constant-offset period that instants with `bisect_right(times, t)
    == i` fall in: (its offset, its end, the change that began it, the offset before that change);
    the first period's change is `_NO_CHANGE`, with the period's own offset before it.
    """

    offset: int
    times: tuple[int, ...]
    before: tuple[int, ...]
    after: tuple[int, ...]
    end: int
    periods: tuple[tuple[int, int, int, int], ...]


_NO_CHANGE = -(1 << 62)
# Sampling weekly finds the same transitions as sampling daily, for all 599 zones, 1970-2040.
_SAMPLE = 7 * _DAY


def _offset(zone: ZoneInfo, instant: int) -> int:
    return datetime.fromtimestamp(instant, zone).utcoffset() // _SECOND  # type: ignore[operator]


@lru_cache(maxsize=8192)
def zone_year(zone: ZoneInfo, year: int) -> ZoneYear:
    """The transitions of `zone` in UTC `year`: sample the offset weekly, bisect each change."""
    start = (date(year, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY
    end = (date(year + 1, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY
    times: list[int] = []
    before: list[int] = []
    after: list[int] = []
    low = start - _DAY
    low_offset = first_offset = _offset(zone, low)
    while low < end:
        high = min(low + _SAMPLE, end - 1)
        high_offset = _offset(zone, high)
        while low_offset != high_offset:  # one or more changes in (low, high]
            left, right = low, high
            while right - left > 1:
                middle = (left + right) // 2
                if _offset(zone, middle) == low_offset:
                    left = middle
                else:
                    right = middle
            changed = _offset(zone, right)
            times.append(right)
            before.append(low_offset)
            after.append(changed)
            low, low_offset = right, changed
        low, low_offset = high, high_offset
        if high == end - 1:
            break
    periods = [(first_offset, times[0] if times else end, _NO_CHANGE, first_offset)]
    for index, changed_at in enumerate(times):
        period_end = times[index + 1] if index + 1 < len(times) else end
        periods.append((after[index], period_end, changed_at, before[index]))
    return ZoneYear(first_offset, tuple(times), tuple(before), tuple(after), end, tuple(periods))


# --- fire times ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Schedule:
    """A compiled (expression, zone) pair."""

    cron: CompiledCron
    zone: ZoneInfo


@lru_cache(maxsize=65536)
def compile_schedule(expression: str, timezone: str) -> Schedule:
    """Compile an (expression, time zone) pair once; raises `UserError` for either."""
    return Schedule(compile_expression(expression), validate_timezone(timezone))


def _ceil_minute(seconds: int) -> int:
    return -(-seconds // 60) * 60


def next_instant(schedule: Schedule, start: int, limit: int, last_year: int | None = None) -> int | None:
    """The first fire time at or after `start` and not after `limit` (UTC seconds), else None.

    `last_year` bounds the wall-clock search (default: `HORIZON_YEARS` after `start`).
    """
    compiled = schedule.cron
    zone = schedule.zone
    fixed = compiled.fixed_time
    known_low = known_wall = None  # the last wall search: no match in [known_low, known_wall)
    while start <= limit:
        index = bisect_right(_YEAR_STARTS, start)  # the UTC year of `start`, by table when it can
        year = _FIRST_YEAR + index - 1 if 0 < index < len(_YEAR_STARTS) else _civil(start // _DAY)[0]
        if last_year is None:
            last_year = year + HORIZON_YEARS
        table = zone_year(zone, year)
        offset, period_end, changed_at, before = table.periods[bisect_right(table.times, start)]
        low = -(-(start + offset) // 60) * 60
        if fixed:
            if offset < before:  # after a fall back: the repeated wall times fired in the first pass
                low = max(low, _ceil_minute(changed_at + before))
            elif changed_at == start and offset > before:  # spring forward now: the gap fires once, now
                in_gap = next_wall_time(compiled, _ceil_minute(changed_at + before), last_year)
                if in_gap is not None and in_gap < changed_at + offset:
                    return start
        if known_low is not None and known_wall is not None and known_low <= low <= known_wall:
            wall = known_wall
        else:
            wall = next_wall_time(compiled, low, last_year)
            if wall is None:
                return None
            known_low, known_wall = low, wall
        if wall < period_end + offset:
            instant = wall - offset
            return instant if instant <= limit else None
        start = period_end
    return None


# The first instant of each UTC year from 1900 to 2400: `next_instant` finds an instant's year by
# bisection (the calendar, through `_civil`, only outside that range).
_FIRST_YEAR = 1900
_YEAR_STARTS = [(date(year, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY for year in range(_FIRST_YEAR, 2401)]


def fire_times(expression: str, timezone: str, start: datetime, end: datetime) -> tuple[datetime, ...]:
    """Every fire time in [start, end] (both inclusive, aware), as sorted distinct UTC instants."""
    schedule = compile_schedule(expression, timezone)
    if end < start:
        return ()
    first = _ceil_minute(-(-((start - _EPOCH) // _MICROSECOND) // 1_000_000))
    limit = math.floor(end.timestamp())
    last_year = _civil(limit // _DAY + 1)[0]
    found: list[datetime] = []
    instant = next_instant(schedule, first, limit, last_year)
    while instant is not None:
        found.append(datetime.fromtimestamp(instant, UTC))
        instant = next_instant(schedule, _ceil_minute(instant + 1), limit, last_year)
    return tuple(found)


def fire_times_and_next(
    expression: str, timezone: str, start: datetime, end: datetime
) -> tuple[tuple[datetime, ...], datetime | None]:
    """`fire_times(start, end)` and `next_fire_time(end)` (None past the horizon) in one search.

    The dispatcher needs both for every schedule it advances: the search that ends the first
    (for the first fire time past `end`) is the one the second would start with.
    """
    schedule = compile_schedule(expression, timezone)
    limit = math.floor(end.timestamp())
    horizon = limit + HORIZON_YEARS * 366 * _DAY
    if end < start:
        following = next_instant(schedule, limit - limit % 60 + 60, horizon)
        return (), None if following is None else datetime.fromtimestamp(following, UTC)
    found: list[datetime] = []
    instant = next_instant(schedule, _ceil_minute(-(-((start - _EPOCH) // _MICROSECOND) // 1_000_000)), horizon)
    while instant is not None and instant <= limit:
        found.append(datetime.fromtimestamp(instant, UTC))
        instant = next_instant(schedule, _ceil_minute(instant + 1), horizon)
    return tuple(found), None if instant is None else datetime.fromtimestamp(instant, UTC)


def next_fire_time(expression: str, timezone: str, after: datetime) -> datetime:
    """The first fire time strictly after `after` (aware, compared at minute resolution), in UTC."""
    schedule = compile_schedule(expression, timezone)
    seconds = math.floor(after.timestamp())
    start = seconds - seconds % 60 + 60
    instant = next_instant(schedule, start, start + HORIZON_YEARS * 366 * _DAY)
    if instant is None:
        raise UserError("cron", f"{expression!r} does not fire within {HORIZON_YEARS} years")
    return datetime.fromtimestamp(instant, UTC)


def next_fire_times(expression: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire times strictly after `after`."""
    result: list[datetime] = []
    current = after
    for _ in range(count):
        current = next_fire_time(expression, timezone, current)
        result.append(current)
    return result


def clear_caches() -> None:
    """Forget everything compiled, as a new process would (benchmarks measure cold ticks)."""
    for cached in (
        compile_schedule, compile_expression, validate_timezone, zone_year, _parse_field, _weekday_days, _day_minutes
    ):
        cached.cache_clear()
    _MONTHS.clear()
    _CIVIL.clear()
