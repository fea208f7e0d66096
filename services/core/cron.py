"""Cron math: standard 5-field expressions, IANA time zones, and ISC/Vixie cron's DST rules.

Pure functions over aware UTC datetimes. Wall-clock candidates come from croniter on naive local
times; each is then mapped to real instants with the DST rules of the README's Schedules section:

* An expression is *fixed-time* when neither its minute nor its hour field starts with ``*``.
* Spring forward (the wall time does not exist): a fixed-time fire time runs once at the first
  instant after the gap; a wildcard one does not occur.
* Fall back (the wall time happens twice): a fixed-time fire time runs once, in the first pass;
  a wildcard one runs at both instants.
* Fire times that land on the same instant are one fire time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterBadDateError

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


def _validate_field(text: str, field: str, low: int, high: int, names: tuple[str, ...]) -> None:
    for item in text.split(","):
        match = _ITEM.match(item)
        if not match:
            raise UserError("cron", f"{field} field: {item!r} is not valid cron syntax")
        star, start, end, step = match.groups()
        if step is not None and int(step) == 0:
            raise UserError("cron", f"{field} field: a step of 0 never advances")
        if star:
            continue
        first = _value(start, field, low, high, names)
        if end is not None:
            last = _value(end, field, low, high, names)
            if last < first:
                raise UserError("cron", f"{field} field: range {start}-{end} runs backwards")
        elif step is not None:
            raise UserError("cron", f"{field} field: a step needs '*' or a range, got {item!r}")


def validate_expression(expression: str) -> str:
    """Check a standard 5-field expression and return it normalised (single spaces, lowercase).

    Raises `UserError` naming the field. Extensions (``L``, ``#``, ``?``, seconds, ``@daily``)
    are refused so an expression means the same thing here as in any other cron.
    """
    fields = expression.strip().lower().split()
    if len(fields) != 5:
        raise UserError(
            "cron", f"{expression!r} has {len(fields)} fields; expected 5 (minute hour dom month dow)"
        )
    for text, (field, low, high, names) in zip(fields, FIELDS, strict=True):
        _validate_field(text, field, low, high, names)
    normalised = " ".join(fields)
    try:
        _first_wall_time(normalised, datetime(2000, 1, 1))
    except CroniterBadDateError:
        raise UserError("cron", f"{expression!r} never fires (no such date)") from None
    return normalised


def validate_timezone(name: str) -> ZoneInfo:
    """Resolve an IANA time zone name or raise `UserError` naming the field."""
    try:
        # At most 64 characters (the column); a tzdata folder (`Europe`) is an OSError.
        if not name or len(name) > 64 or name != name.strip() or name.startswith("/") or ".." in name:
            raise ValueError
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UserError("timezone", f"{name[:80]!r} is not an IANA time zone (e.g. Europe/Berlin)") from None


def is_fixed_time(expression: str) -> bool:
    """True when neither the minute nor the hour field starts with '*' (ISC cron's rule)."""
    minute, hour = expression.split()[:2]
    return not minute.startswith("*") and not hour.startswith("*")


def _first_wall_time(expression: str, after: datetime) -> datetime:
    return croniter(expression, after, max_years_between_matches=10).get_next(datetime)


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
    iterator = croniter(expression, lowest_wall - timedelta(minutes=1), max_years_between_matches=10)
    try:
        while (wall := iterator.get_next(datetime)) <= highest_wall:
            for instant in instants_for_wall_time(wall, zone, fixed):
                if start <= instant <= end:
                    found.add(instant)
    except CroniterBadDateError:
        pass
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
