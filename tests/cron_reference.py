"""A brute-force reference for cron fire times, sharing no code with the engine (services.core.cron)
or croniter: the tests of the engine and the chaos suite's expected fire times both use it.

It parses an expression into plain sets, walks every UTC minute of a window, reads the zone's
wall clock with zoneinfo and decides membership from the five fields and Vixie's day rule
(SPEC §4: when either day field starts with `*`, a day must match both; otherwise either), then
applies the DST rules literally: a wildcard expression fires at every real minute whose wall time
matches; a fixed-time one only in the first pass of a repeated wall time (fold 0), and when wall
times were skipped (a spring-forward gap) and one of them matches, once at the first instant
after the gap. Expressions landing on the same instant make one fire time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MINUTE = timedelta(minutes=1)


def reference_field(text: str, low: int, high: int, names: tuple[str, ...], first_name: int) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        body, _, step = item.partition("/")
        if body == "*":
            first, last = low, high
        else:
            start, _, end = body.partition("-")
            number = lambda token: int(token) if token.isdigit() else names.index(token) + first_name  # noqa: E731
            first = number(start)
            last = number(end) if end else first
            if end == "sun" and first > 0:
                last = 7
        values.update(range(first, last + 1, int(step or 1)))
    return values


class Reference:
    def __init__(self, expression: str) -> None:
        minute, hour, dom, month, dow = expression.split()
        self.minutes = reference_field(minute, 0, 59, (), 0)
        self.hours = reference_field(hour, 0, 23, (), 0)
        self.doms = reference_field(dom, 1, 31, (), 0)
        self.months = reference_field(month, 1, 12, MONTHS, 1)
        self.dows = {d % 7 for d in reference_field(dow, 0, 7, DAYS, 0)}
        self.both_days = dom.startswith("*") or dow.startswith("*")
        self.fixed = not minute.startswith("*") and not hour.startswith("*")

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_dom = day.day in self.doms
        by_dow = day.isoweekday() % 7 in self.dows
        return (by_dom and by_dow) if self.both_days else (by_dom or by_dow)

    def matches(self, wall: datetime) -> bool:
        return wall.minute in self.minutes and wall.hour in self.hours and self.day_matches(wall.date())

    def fire_times(self, zone_name: str, start: datetime, end: datetime) -> list[datetime]:
        """Walk every UTC minute in [start, end]."""
        zone = ZoneInfo(zone_name)
        found: list[datetime] = []
        instant = start
        previous_wall = (instant - MINUTE).astimezone(zone).replace(tzinfo=None)
        while instant <= end:
            local = instant.astimezone(zone)
            wall = local.replace(tzinfo=None)
            fires = self.matches(wall) and (not self.fixed or local.fold == 0)
            skipped = previous_wall + MINUTE
            while self.fixed and not fires and skipped < wall:  # wall times in a spring-forward gap
                fires = self.matches(skipped)
                skipped += MINUTE
            if fires:
                found.append(instant)
            previous_wall = wall
            instant += MINUTE
        return found


def fire_times(crons: Iterable[str], zone_name: str, start: datetime, end: datetime) -> list[datetime]:
    """Every fire time of any of `crons` in (start, end], as UTC instants, ascending."""
    first = start.astimezone(UTC).replace(second=0, microsecond=0) + MINUTE
    found: set[datetime] = set()
    for expression in crons:
        found.update(Reference(expression).fire_times(zone_name, first, end))
    return sorted(found)
