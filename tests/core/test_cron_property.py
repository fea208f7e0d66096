"""The cron engine against a brute-force reference (tests/cron_reference.py, no shared code),
over random expressions, zones and windows, mostly around DST transitions."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.core import cron
from services.core.errors import UserError
from tests.cron_reference import DAYS, MINUTE, MONTHS, Reference

ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "UTC",
    "America/Santiago",
    "Pacific/Chatham",
)


@cache
def transitions(zone_name: str, year: int) -> tuple[datetime, ...]:
    """UTC hours at which the zone's offset differs from the hour before (every DST change starts
    on a whole hour UTC in these zones, Lord Howe and Chatham included)."""
    zone = ZoneInfo(zone_name)
    hour = datetime(year, 1, 1, tzinfo=UTC)
    found = []
    previous = hour.astimezone(zone).utcoffset()
    while hour.year == year:
        hour += timedelta(hours=1)
        offset = hour.astimezone(zone).utcoffset()
        if offset != previous:
            found.append(hour)
        previous = offset
    return tuple(found)


# --- random expressions ----------------------------------------------------------------------


@st.composite
def items(draw: st.DrawFn, low: int, high: int, names: tuple[str, ...] = (), first_name: int = 0) -> str:
    def token(value: int) -> str:
        index = value - first_name
        if names and 0 <= index < len(names) and draw(st.booleans()):
            return names[index]
        return str(value)

    kind = draw(st.sampled_from(["star", "star-step", "value", "range", "range-step", "n-n"]))
    if kind == "star":
        return "*"
    if kind == "star-step":
        return f"*/{draw(st.integers(1, high - low + 1))}"
    first = draw(st.integers(low, high))
    if kind == "value":
        return token(first)
    if kind == "n-n":
        return f"{token(first)}-{token(first)}"
    last = draw(st.integers(first, high))
    text = f"{token(first)}-{token(last)}"
    if names == DAYS and last == 7 and first > 0 and draw(st.booleans()):
        text = f"{token(first)}-sun"
    if kind == "range-step":
        text += f"/{draw(st.integers(1, high - low + 1))}"
    return text


def field(low: int, high: int, names: tuple[str, ...] = (), first_name: int = 0, star_weight: int = 1):
    listed = st.lists(items(low, high, names, first_name), min_size=1, max_size=3).map(",".join)
    return st.one_of(*([st.just("*")] * star_weight), listed)


expressions = st.tuples(
    field(0, 59),
    field(0, 23),
    field(1, 31, star_weight=3),
    field(1, 12, MONTHS, 1, star_weight=3),
    field(0, 7, DAYS, 0, star_weight=2),
).map(" ".join)


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, str, datetime, datetime]:
    """An expression, a zone and a window of up to two days, mostly around a DST transition.

    In a third of the cases the window holds a transition and the expression is fixed-time with
    its hours next to it (days mostly '*'), so gaps and repeated hours meet the fixed-time rules.
    """
    mode = draw(st.sampled_from(["random", "transition", "fixed-at-transition"]))
    zone = draw(st.sampled_from(ZONES if mode == "random" else [z for z in ZONES if transitions(z, 2026)]))
    year = draw(st.integers(2024, 2030))
    changes = transitions(zone, year)
    if mode == "random" or not changes:
        anchor = datetime(year, 1, 1, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 525_000)))
        start = anchor + timedelta(minutes=draw(st.integers(-36 * 60, 12 * 60)))
        end = start + timedelta(minutes=draw(st.integers(0, 48 * 60)))
    else:
        anchor = draw(st.sampled_from(changes))
        start = anchor - timedelta(minutes=draw(st.integers(0, 24 * 60)))
        end = anchor + timedelta(minutes=draw(st.integers(0, 24 * 60)))
    minute, hour, dom, month, dow = draw(expressions).split()
    if mode == "fixed-at-transition":
        tz = ZoneInfo(zone)
        near = sorted({(anchor + timedelta(minutes=m)).astimezone(tz).hour for m in (-61, -1, 0, 30, 61)})
        hours = draw(st.lists(st.sampled_from(near), min_size=1, max_size=2, unique=True))
        hour = draw(st.sampled_from([",".join(map(str, hours)), f"{min(near)}-{max(near)}"]))
        minute = draw(st.sampled_from([str(draw(st.integers(0, 59))), "0,30", "15-45/15", "0-0", "59"]))
        dom, month, dow = (draw(st.sampled_from(["*", text])) for text in (dom, month, dow))
    return " ".join((minute, hour, dom, month, dow)), zone, start, end


def check_against_reference(case: tuple[str, str, datetime, datetime]) -> None:
    expression, zone, start, end = case
    reference = Reference(expression)
    try:
        cron.compile_expression(expression)
    except UserError as error:
        assert "never fires" in error.message
        assert not any(reference.day_matches(date(2000, 1, 1) + timedelta(days=n)) for n in range(366 * 28 + 7))
        return
    expected = reference.fire_times(zone, start, end)
    assert list(cron.fire_times(expression, zone, start, end)) == expected
    # The dispatcher's one-search form: the same times, then the first one after `end`.
    times, following = cron.fire_times_and_next(expression, zone, start, end)
    assert list(times) == expected
    assert following == cron.next_fire_time(expression, zone, end)
    soon = reference.fire_times(zone, end + MINUTE, end + timedelta(hours=6))
    if soon:
        assert following == soon[0]
    later = [t for t in expected if t > start]
    if later:
        assert cron.next_fire_time(expression, zone, start) == later[0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_engine_matches_the_brute_force_reference(case: tuple[str, str, datetime, datetime]) -> None:
    check_against_reference(case)


# The longer run: ~10 s at the default; CRON_PROPERTY_EXAMPLES=20000 for a thorough one.
@pytest.mark.slow
@settings(
    max_examples=int(os.environ.get("CRON_PROPERTY_EXAMPLES", "800")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(case=cases())
def test_engine_matches_the_brute_force_reference_at_length(case: tuple[str, str, datetime, datetime]) -> None:
    check_against_reference(case)


@settings(max_examples=60, deadline=None)
@given(expression=expressions, zone=st.sampled_from(ZONES), days=st.integers(0, 3000))
def test_next_fire_time_is_the_first_reference_fire_time(expression: str, zone: str, days: int) -> None:
    """Anywhere in 2024-2032 (not only near transitions), including sparse expressions."""
    try:
        cron.compile_expression(expression)
    except UserError:
        return
    after = datetime(2024, 1, 1, 0, 7, tzinfo=UTC) + timedelta(days=days, minutes=days * 7)
    found = cron.next_fire_time(expression, zone, after)
    assert found > after and found.second == 0
    # Nothing in between, and the reference fires at `found`.
    expected = Reference(expression).fire_times(zone, after + MINUTE, min(found, after + timedelta(days=2)))
    if found <= after + timedelta(days=2):
        assert expected == [found]
    else:
        assert expected == []
