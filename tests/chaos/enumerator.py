"""An independent fire-time enumerator for the chaos suite: minute by minute, no shared code.

It deliberately knows nothing of services.core.cron (the engine under test): it walks every UTC
minute of a window, looks at the wall clock in the schedule's zone, and applies the documented
rules (docs/cron.md, Daylight saving time) the slow, obvious way:

- a wildcard expression (minute or hour field starts with `*`) fires at every instant whose wall
  time matches: both passes of a repeated hour, none in a skipped hour;
- a fixed-time expression fires at the first pass of a repeated wall time only, and a wall time
  it names inside a skipped hour fires once, at the first instant after the gap;
- day fields follow Vixie cron: when both day-of-month and day-of-week are restricted (neither
  starts with `*`), either may match;
- expressions landing on the same instant make one fire time.

Supported syntax (all the chaos schedules use): `*`, `N`, `A-B`, `*/S`, `A-B/S`, lists, and
three-letter month and day names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
MINUTE = timedelta(minutes=1)


def _value(text: str, names: list[str], offset: int) -> int:
    lowered = text.lower()
    if lowered in names:
        return names.index(lowered) + offset
    return int(text)


def _field(text: str, low: int, high: int, names: list[str] | None = None, offset: int = 0) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if body == "*":
            start, end = low, high
        elif "-" in body:
            a, b = body.split("-")
            start, end = _value(a, names or [], offset), _value(b, names or [], offset)
        else:
            start = _value(body, names or [], offset)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return values


@dataclass(frozen=True)
class Expression:
    minutes: set[int]
    hours: set[int]
    days: set[int]
    months: set[int]
    weekdays: set[int]  # 0 = Sunday
    day_restricted: bool
    weekday_restricted: bool
    wildcard: bool

    @classmethod
    def parse(cls, text: str) -> Expression:
        minute, hour, day, month, weekday = text.split()
        weekdays = {d % 7 for d in _field(weekday, 0, 7, DAYS, 0)}
        return cls(
            minutes=_field(minute, 0, 59),
            hours=_field(hour, 0, 23),
            days=_field(day, 1, 31),
            months=_field(month, 1, 12, MONTHS, 1),
            weekdays=weekdays,
            day_restricted=not day.startswith("*"),
            weekday_restricted=not weekday.startswith("*"),
            wildcard=minute.startswith("*") or hour.startswith("*"),
        )

    def matches(self, wall: datetime) -> bool:
        if wall.minute not in self.minutes or wall.hour not in self.hours or wall.month not in self.months:
            return False
        day_ok = wall.day in self.days
        weekday_ok = (wall.isoweekday() % 7) in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok


def fire_times(crons: Iterable[str], zone_name: str, start: datetime, end: datetime) -> list[datetime]:
    """Every fire time in (start, end], as UTC instants, ascending."""
    zone = ZoneInfo(zone_name)
    expressions = [Expression.parse(text) for text in crons]
    instant = start.astimezone(UTC).replace(second=0, microsecond=0) + MINUTE
    found: set[datetime] = set()
    while instant <= end:
        wall = instant.astimezone(zone)
        before = (instant - MINUTE).astimezone(zone)
        skipped = _skipped_wall_minutes(before, wall)
        for expression in expressions:
            if expression.matches(wall.replace(tzinfo=None)) and (expression.wildcard or wall.fold == 0):
                if expression.wildcard or not _repeated_second_pass(instant, zone):
                    found.add(instant)
            if not expression.wildcard and any(expression.matches(w) for w in skipped):
                found.add(instant)  # the first instant after the gap
        instant += MINUTE
    return sorted(found)


def _skipped_wall_minutes(before: datetime, now: datetime) -> list[datetime]:
    """Wall minutes that no instant shows, between the previous minute's wall time and this one's."""
    previous = before.replace(tzinfo=None)
    current = now.replace(tzinfo=None)
    skipped: list[datetime] = []
    wall = previous + MINUTE
    while wall < current and len(skipped) < 24 * 60:
        skipped.append(wall)
        wall += MINUTE
    return skipped


def _repeated_second_pass(instant: datetime, zone: ZoneInfo) -> bool:
    """True when this instant's wall time was already shown by an earlier instant (fall back)."""
    wall = instant.astimezone(zone).replace(tzinfo=None)
    for hours_back in range(1, 4):
        earlier = instant - timedelta(hours=hours_back)
        for minutes_back in range(0, 60, 1):
            probe = earlier + timedelta(minutes=minutes_back)
            if probe < instant and probe.astimezone(zone).replace(tzinfo=None) == wall:
                return True
    return False
