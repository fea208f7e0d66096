"""When a schedule fires: cron expressions (union), an interval, or one instant, within bounds.

Pure functions over aware UTC datetimes. Cron kinds follow the DST rules of `services.core.cron`;
an interval counts real time from its anchor (so `every: 90m` is 90 minutes apart across a DST
change); `start_at`/`end_at` bound every kind, inclusive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from services.core import cron
from services.core.errors import UserError


class _ScheduleLike(Protocol):
    cron: str | None
    timezone: str
    interval_seconds: int | None
    anchor_at: datetime | None
    run_at: datetime | None
    start_at: datetime | None
    end_at: datetime | None

    @property
    def cron_expressions(self) -> list[str]: ...


@dataclass(frozen=True)
class Timing:
    """Exactly one of `crons`, `interval_seconds` (with `anchor_at`) or `run_at` is set."""

    crons: tuple[str, ...] = ()
    timezone: str = "UTC"
    interval_seconds: int | None = None
    anchor_at: datetime | None = None
    run_at: datetime | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None

    @classmethod
    def of(cls, schedule: _ScheduleLike) -> Timing:
        return cls(
            crons=tuple(schedule.cron_expressions),
            timezone=schedule.timezone,
            interval_seconds=schedule.interval_seconds,
            anchor_at=schedule.anchor_at,
            run_at=schedule.run_at,
            start_at=schedule.start_at,
            end_at=schedule.end_at,
        )

    def unbounded(self) -> Timing:
        return Timing(self.crons, self.timezone, self.interval_seconds, self.anchor_at, self.run_at)


def _interval(timing: Timing) -> tuple[datetime, timedelta]:
    assert timing.interval_seconds is not None and timing.anchor_at is not None
    return timing.anchor_at.astimezone(UTC), timedelta(seconds=timing.interval_seconds)


def _raw_fire_times(timing: Timing, start: datetime, end: datetime) -> list[datetime]:
    if end < start:
        return []
    if timing.interval_seconds is not None:
        anchor, step = _interval(timing)
        first = max(0, -((anchor - start) // step))  # ceil((start - anchor) / step)
        last = (end - anchor) // step
        return [anchor + k * step for k in range(first, last + 1)]
    if timing.run_at is not None:
        return [timing.run_at] if start <= timing.run_at <= end else []
    found: set[datetime] = set()
    for expression in timing.crons:
        found.update(cron.fire_times(expression, timing.timezone, start, end))
    return sorted(found)


def fire_times(timing: Timing, start: datetime, end: datetime) -> list[datetime]:
    """Every fire time in [start, end] (inclusive) and within the bounds, sorted and distinct."""
    if timing.start_at is not None:
        start = max(start, timing.start_at)
    if timing.end_at is not None:
        end = min(end, timing.end_at)
    return _raw_fire_times(timing, start, end)


def next_fire_time(timing: Timing, after: datetime) -> datetime | None:
    """The first fire time strictly after `after` within the bounds; None when none is left."""
    if timing.start_at is not None and after < timing.start_at:
        after = timing.start_at - timedelta(microseconds=1)
    found: datetime | None
    if timing.interval_seconds is not None:
        anchor, step = _interval(timing)
        try:
            found = anchor if after < anchor else anchor + ((after - anchor) // step + 1) * step
        except OverflowError:  # past the calendar's end (year 9999): none is left
            found = None
    elif timing.run_at is not None:
        found = timing.run_at if after < timing.run_at else None
    else:
        try:
            found = min(cron.next_fire_time(e, timing.timezone, after) for e in timing.crons)
        except (OverflowError, ValueError) as error:  # the search ran past the calendar's end (9999)
            if isinstance(error, UserError):
                raise
            found = None
    if found is None or (timing.end_at is not None and found > timing.end_at):
        return None
    return found


def fire_times_and_next(timing: Timing, start: datetime, end: datetime) -> tuple[list[datetime], datetime | None]:
    """`fire_times(start, end)` and `next_fire_time(end)`, with one search per cron expression
    (the tick needs both for every schedule it advances)."""
    if not timing.crons or (timing.start_at is not None and timing.start_at > start):
        return fire_times(timing, start, end), next_fire_time(timing, end)
    found: set[datetime] = set()
    following: datetime | None = None
    for expression in timing.crons:
        times, after = cron.fire_times_and_next(expression, timing.timezone, start, end)
        if after is None:  # as next_fire_time says it
            raise UserError("cron", f"{expression!r} does not fire within {cron.HORIZON_YEARS} years")
        found.update(times)
        following = after if following is None else min(following, after)
    if timing.end_at is not None:
        found = {t for t in found if t <= timing.end_at}
        if following is not None and following > timing.end_at:
            following = None
    return sorted(found), following


def next_fire_times(timing: Timing, after: datetime, count: int) -> list[datetime]:
    """Up to `count` fire times strictly after `after` (fewer when the schedule ends)."""
    result: list[datetime] = []
    current = after
    for _ in range(count):
        found = next_fire_time(timing, current)
        if found is None:
            break
        result.append(found)
        current = found
    return result


def fire_times_limited(timing: Timing, start: datetime, end: datetime, limit: int) -> list[datetime]:
    """The fire times in [start, end], computed in growing spans and stopped past `limit`.

    A range of a century of every-minute fire times is refused at once instead of computed.
    """
    times: list[datetime] = []
    chunk_start, span = start, timedelta(days=1)
    while chunk_start <= end and len(times) <= limit:
        chunk_end = end if end - chunk_start <= span else chunk_start + span
        times.extend(fire_times(timing, chunk_start, chunk_end))
        chunk_start, span = chunk_end + timedelta(microseconds=1), span * 2
    return times
