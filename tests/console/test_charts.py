"""The geometry behind the console's SVG charts (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.console import charts
from services.core import cron

T0 = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)


def test_step_timeline_places_bars_by_start_and_duration() -> None:
    steps = [
        {"id": "a", "type": "log", "status": "succeeded", "started_at": T0, "finished_at": T0 + timedelta(seconds=1)},
        {"id": "b", "type": "sleep", "status": "running", "started_at": T0 + timedelta(seconds=1), "finished_at": None},
        {"id": "c", "type": "log", "status": "pending", "started_at": None, "finished_at": None},
    ]
    timeline = charts.step_timeline(steps, T0, None, now=T0 + timedelta(seconds=4))
    a, b, c = timeline.bars
    span = charts.TIMELINE_WIDTH - charts.TIMELINE_LABEL - 10
    assert a.x == charts.TIMELINE_LABEL and round(a.width) == round(span / 4)
    assert round(b.x) == round(charts.TIMELINE_LABEL + span / 4) and round(b.width) == round(span * 3 / 4)
    assert (c.status, c.width) == ("pending", 3.0)
    assert [t.label for t in timeline.ticks][:3] == ["0", "1s", "2s"]
    assert timeline.total_seconds == 4


def test_duration_chart_scales_to_the_longest_run() -> None:
    runs = [
        {"id": "1", "status": "succeeded", "duration_seconds": 10.0, "created_at": T0},
        {"id": "2", "status": "failed", "duration_seconds": 5.0, "created_at": T0},
    ]
    chart = charts.duration_chart(runs, width=1000, height=220)
    tall, short = chart.bars
    assert tall.height == 200 and short.height == 100
    assert tall.y + tall.height == 220
    assert short.href == "/executions/2" and chart.max_label == "10s"


def test_calendar_strip_counts_local_days_across_a_dst_change() -> None:
    # Europe/Berlin springs forward on 2026-03-29: a daily 02:30 runs at 03:00 that day.
    start = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    times = cron.fire_times("30 2 * * *", "Europe/Berlin", start, start + timedelta(days=7))
    strip = charts.calendar_strip(times, "Europe/Berlin", start)
    assert [day.date for day in strip][:3] == ["27 Mar", "28 Mar", "29 Mar"]
    assert [day.count for day in strip] == [0, 1, 1, 1, 1, 1, 1]
    assert strip[2].times == ["03:00"] and strip[3].times == ["02:30"]


def test_format_seconds() -> None:
    assert [charts.format_seconds(v) for v in (0.0123, 1.0, 12.5, 75, 3725)] == ["12ms", "1s", "12.5s", "1m15s", "1h02m"]
