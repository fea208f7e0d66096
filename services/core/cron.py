"""Cron math: standard 5-field expressions, IANA time zones, and ISC/Vixie cron's DST rules.

Pure functions over aware UTC datetimes. Expressions are parsed here into sets of allowed values
(no third-party cron library: croniter reads a single-value range such as ``0-0`` as ``*`` and
ORs the day fields even when one of them is ``*/2``). Matching wall-clock times are then mapped
to real instants with the DST rules of docs/schedules.md:

* An expression is *fixed-time* when neither its minute nor its hour field starts with ``*``.
* Spring forward (the wall time does not exist): a fixed-time fire time runs once at the first
  instant after the gap; a wildcard one does not occur.
* Fall back (the wall time happens twice): a fixed-time fire time runs once, in the first pass;
  a wildcard one runs at both instants.
* Fire times that land on the same instant are one fire time.

Day fields follow Vixie cron: when the day-of-month or the day-of-week field starts with ``*``
(``*``, ``*/2``), a day must match both; when both are restricted, either one. ``7`` and a range
ending in ``sun`` (``fri-sun``) mean Sunday.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
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

_ITEM = re.compile(r"^(?:(\*)|([0-9a-z]+)(?:-([0-9a-z]+))?)(?:/([0-9]+))?$")

# How far the wall clock can move at a transition, with margin (the largest real shift is 2h).
_DST_MARGIN = timedelta(hours=3)
# Windows tried in turn when looking for the next fire time; the last covers Feb 29 schedules.
_SEARCH_WINDOWS = (
    timedelta(hours=2),
    timedelta(days=2),
    timedelta(days=64),
    timedelta(days=800),
    timedelta(days=366 * 9),
)
# Every (weekday, leap year) combination of a date occurs within 28 years.
_NEVER_FIRES_SCAN_DAYS = 28 * 366


@dataclass(frozen=True)
class CronSpec:
    """A parsed expression: the allowed values of each field."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday .. 6 = Saturday
    # Vixie's rule: True when either day field starts with '*' (a day must match both).
    days_and: bool

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_month_day = day.day in self.days
        by_weekday = day.isoweekday() % 7 in self.weekdays
        return by_month_day and by_weekday if self.days_and else by_month_day or by_weekday


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


def _parse_field(text: str, field: str, low: int, high: int, names: tuple[str, ...]) -> set[int]:
    """The values one field allows; raises `UserError` naming the field."""
    values: set[int] = set()
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
            last = first
            if end is not None:
                last = _value(end, field, low, high, names)
                if field == "day of week" and end == "sun" and first > 0:
                    last = 7  # `fri-sun`: Friday to Sunday
                if last < first:
                    raise UserError("cron", f"{field} field: range {start}-{end} runs backwards")
            elif step_text is not None:
                raise UserError("cron", f"{field} field: a step needs '*' or a range, got {item!r}")
        values.update(range(first, last + 1, step))
    if field == "day of week":
        values = {v % 7 for v in values}  # 7 is Sunday too
    return values


@lru_cache(maxsize=1024)
def parse_expression(expression: str) -> CronSpec:
    """Parse a normalised or raw 5-field expression into a `CronSpec` (no never-fires check)."""
    fields = expression.strip().lower().split()
    if len(fields) != 5:
        raise UserError(
            "cron", f"{expression!r} has {len(fields)} fields; expected 5 (minute hour dom month dow)"
        )
    minutes, hours, days, months, weekdays = (
        _parse_field(text, *field) for text, field in zip(fields, FIELDS, strict=True)
    )
    return CronSpec(
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=frozenset(days),
        months=frozenset(months),
        weekdays=frozenset(weekdays),
        days_and=fields[2].startswith("*") or fields[4].startswith("*"),
    )


def _fires_on_some_day(spec: CronSpec) -> bool:
    first = date(2000, 1, 1)
    return any(spec.matches_day(first + timedelta(days=n)) for n in range(_NEVER_FIRES_SCAN_DAYS))


def validate_expression(expression: str) -> str:
    """Check a standard 5-field expression and return it normalised (single spaces, lowercase).

    Raises `UserError` naming the field. Extensions (``L``, ``#``, ``?``, seconds, ``@daily``)
    are refused so an expression means the same thing here as in any other cron.
    """
    spec = parse_expression(expression)
    if not _fires_on_some_day(spec):
        raise UserError("cron", f"{expression!r} never fires (no such date)")
    return " ".join(expression.strip().lower().split())


def wall_times(expression: str, start: datetime, end: datetime) -> Iterator[datetime]:
    """Every naive wall-clock minute in [start, end] the expression matches, in order."""
    spec = parse_expression(expression)
    day = start.date()
    for _ in range((end.date() - day).days + 1):
        if spec.matches_day(day):
            for hour in spec.hours:
                for minute in spec.minutes:
                    wall = datetime.combine(day, time(hour, minute))
                    if start <= wall <= end:
                        yield wall
        day += timedelta(days=1)


def validate_timezone(name: str) -> ZoneInfo:
    """Resolve an IANA time zone name or raise `UserError` naming the field."""
    try:
        if not name or name != name.strip() or name.startswith("/") or ".." in name:
            raise ValueError
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError("timezone", f"{name!r} is not an IANA time zone (e.g. Europe/Berlin)") from None


def is_fixed_time(expression: str) -> bool:
    """True when neither the minute nor the hour field starts with '*' (ISC cron's rule)."""
    minute, hour = expression.split()[:2]
    return not minute.startswith("*") and not hour.startswith("*")


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _first_instant_at_or_after_wall(wall: datetime, zone: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """The earliest whole-minute UTC instant in [low, high] whose local wall time is >= `wall`."""
    while high - low > timedelta(minutes=1):
        middle = low + timedelta(minutes=((high - low) // timedelta(minutes=1)) // 2)
        if _wall(middle, zone) >= wall:
            high = middle
        else:
            low = middle
    return low if _wall(low, zone) >= wall else high


def instants_for_wall_time(wall: datetime, zone: ZoneInfo, fixed_time: bool) -> list[datetime]:
    """Map one matching wall-clock time to the UTC instants it fires at, by the DST rules."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    exists = _wall(first, zone) == wall
    if exists:  # fall back: the wall time happens twice, `first` is the first pass
        return [first] if fixed_time else [first, second]
    if not fixed_time:  # spring forward: wildcard times in the gap do not occur
        return []
    # In the gap, fold=1 reads the wall time with the later offset, fold=0 with the earlier one;
    # the transition instant lies between them.
    return [_first_instant_at_or_after_wall(wall, zone, min(first, second), max(first, second))]


@lru_cache(maxsize=4096)
def fire_times(expression: str, timezone: str, start: datetime, end: datetime) -> tuple[datetime, ...]:
    """Every fire time in [start, end] (both inclusive, aware), as sorted distinct UTC instants.

    Cached: a dispatcher tick asks once per distinct (expression, time zone, range).
    """
    if end < start:
        return ()
    zone = validate_timezone(timezone)
    fixed = is_fixed_time(expression)
    lowest_wall = _wall(start, zone) - _DST_MARGIN
    highest_wall = _wall(end, zone) + _DST_MARGIN
    found: set[datetime] = set()
    for wall in wall_times(expression, lowest_wall, highest_wall):
        for instant in instants_for_wall_time(wall, zone, fixed):
            if start <= instant <= end:
                found.add(instant)
    return tuple(sorted(found))


@lru_cache(maxsize=4096)
def next_fire_time(expression: str, timezone: str, after: datetime) -> datetime:
    """The first fire time strictly after `after` (aware), in UTC."""
    start = after.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    for window in _SEARCH_WINDOWS:
        found = fire_times(expression, timezone, start, start + window)
        if found:
            return found[0]
    raise UserError("cron", f"{expression!r} does not fire within nine years")


def next_fire_times(expression: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire times strictly after `after`."""
    result: list[datetime] = []
    current = after
    for _ in range(count):
        current = next_fire_time(expression, timezone, current)
        result.append(current)
    return result
