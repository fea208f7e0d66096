"""Geometry for the console's server-rendered SVG charts (pure functions; templates draw them).

Each function turns rows into shapes in a fixed viewBox, so the browser scales them and no
JavaScript charting library is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

TIMELINE_WIDTH = 1000
TIMELINE_LABEL = 180
TIMELINE_ROW = 30


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    status: str
    label: str
    title: str
    href: str | None = None


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Timeline:
    bars: list[Bar]
    ticks: list[Tick]
    height: int
    total_seconds: float


def _nice_step(total: float, target_ticks: int = 6) -> float:
    raw = max(total / target_ticks, 0.001)
    for step in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        if step >= raw:
            return float(step)
    return 3600.0 * round(raw / 3600.0 + 0.5)


def format_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s".replace(".0s", "s")
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def step_timeline(steps: list[dict[str, Any]], start: datetime | None, end: datetime | None, now: datetime) -> Timeline:
    """A Gantt bar per step, on a time axis from the execution's start to its end (or now)."""
    started = [s["started_at"] for s in steps if s.get("started_at")]
    origin = start or (min(started) if started else now)
    finish_candidates = [s["finished_at"] or now for s in steps if s.get("started_at")]
    finish = end or max([*finish_candidates, origin])
    total = max((finish - origin).total_seconds(), 0.001)
    span = TIMELINE_WIDTH - TIMELINE_LABEL - 10
    bars = []
    for index, step in enumerate(steps):
        step_start = step.get("started_at") or origin
        step_end = step.get("finished_at") or (now if step.get("status") == "running" else step_start)
        offset = max(0.0, (step_start - origin).total_seconds())
        duration = max(0.0, (step_end - step_start).total_seconds())
        x = TIMELINE_LABEL + span * min(offset / total, 1.0)
        width = max(3.0, span * min(duration / total, 1.0))
        width = min(width, TIMELINE_WIDTH - 10 - x) if x < TIMELINE_WIDTH - 13 else 3.0
        bars.append(
            Bar(
                x=round(x, 1),
                y=index * TIMELINE_ROW + 6,
                width=round(width, 1),
                height=TIMELINE_ROW - 12,
                status=step.get("status") or "pending",
                label=f"{step['id']}",
                title=f"{step['id']} ({step.get('type')}): {step.get('status')}, {format_seconds(duration)}",
            )
        )
    step_size = _nice_step(total)
    ticks = []
    value = 0.0
    while value <= total + 1e-9 and len(ticks) < 20:
        ticks.append(
            Tick(x=round(TIMELINE_LABEL + span * value / total, 1), label=format_seconds(value) if value else "0")
        )
        value += step_size
    return Timeline(bars=bars, ticks=ticks, height=max(1, len(steps)) * TIMELINE_ROW + 24, total_seconds=total)


@dataclass(frozen=True)
class ColumnChart:
    bars: list[Bar]
    max_value: float
    width: int
    height: int
    max_label: str


def duration_chart(runs: list[dict[str, Any]], width: int = 1000, height: int = 220) -> ColumnChart:
    """One column per run (oldest left), height proportional to its duration."""
    durations = [float(r.get("duration_seconds") or 0.0) for r in runs]
    top = max(durations, default=0.0) or 1.0
    # At least 20 slots, so a handful of runs are columns, not walls.
    slot = width / max(len(runs), 20)
    bars = []
    for index, (run, value) in enumerate(zip(runs, durations, strict=True)):
        bar_height = max(2.0, (height - 20) * value / top)
        bars.append(
            Bar(
                x=round(index * slot + slot * 0.15, 1),
                y=round(height - bar_height, 1),
                width=round(max(slot * 0.7, 2.0), 1),
                height=round(bar_height, 1),
                status=run["status"],
                label=format_seconds(value),
                title=f"{_short_time(run.get('created_at'))}: {run['status']}, {format_seconds(value)}",
                href=f"/executions/{run['id']}",
            )
        )
    return ColumnChart(bars=bars, max_value=top, width=width, height=height, max_label=format_seconds(top))


@dataclass(frozen=True)
class StackSegment:
    y: float
    height: float
    kind: str


@dataclass(frozen=True)
class HourColumn:
    x: float
    width: float
    segments: list[StackSegment]
    label: str
    title: str


def hourly_chart(buckets: list[dict[str, Any]], width: int = 1000, height: int = 160) -> tuple[list[HourColumn], int]:
    """Stacked columns per hour: succeeded, failed, other."""
    totals = [b["succeeded"] + b["failed"] + b["other"] for b in buckets]
    top = max(totals, default=0) or 1
    slot = width / max(len(buckets), 1)
    columns = []
    for index, bucket in enumerate(buckets):
        y = float(height)
        segments = []
        for kind in ("succeeded", "failed", "other"):
            value = bucket[kind]
            if not value:
                continue
            seg_height = (height - 8) * value / top
            y -= seg_height
            segments.append(StackSegment(y=round(y, 1), height=round(seg_height, 1), kind=kind))
        hour: datetime = bucket["hour"]
        columns.append(
            HourColumn(
                x=round(index * slot + slot * 0.12, 1),
                width=round(slot * 0.76, 1),
                segments=segments,
                label=hour.strftime("%H:00"),
                title=(
                    f"{hour:%H:00} UTC: {bucket['succeeded']} succeeded, "
                    f"{bucket['failed']} failed, {bucket['other']} other"
                ),
            )
        )
    return columns, top


@dataclass(frozen=True)
class CalendarDay:
    label: str
    date: str
    count: int
    marks: list[float]  # 0..1 positions of fire times across the local day
    times: list[str]


def calendar_strip(times: list[datetime], timezone: str, start: datetime, days: int = 7) -> list[CalendarDay]:
    """The next `days` local days with their fire times (positions for a 24-hour track)."""
    zone = ZoneInfo(timezone)
    first = start.astimezone(zone).date()
    by_day: dict[Any, list[datetime]] = {first + timedelta(days=i): [] for i in range(days)}
    for moment in times:
        local = moment.astimezone(zone)
        if local.date() in by_day:
            by_day[local.date()].append(local)
    strip = []
    for day, moments in by_day.items():
        strip.append(
            CalendarDay(
                label=day.strftime("%a"),
                date=day.strftime("%d %b"),
                count=len(moments),
                marks=[round((m.hour * 60 + m.minute) / 1440, 4) for m in moments[:300]],
                times=[m.strftime("%H:%M") for m in moments[:6]],
            )
        )
    return strip


def _short_time(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "-"
