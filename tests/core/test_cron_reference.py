"""The day rule and single-value ranges, checked against an independent brute-force enumerator.

The reference (tests/cron_reference.py) is written from the spec's words (SPEC §4, Day fields),
not from the engine: it reads each field naively and walks every minute of a range.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from services.core import cron
from tests.cron_reference import Reference


def reference_fire_times(expression: str, start: datetime, end: datetime) -> list[datetime]:
    """Every minute in [start, end] the expression matches (UTC: no DST), by walking each minute."""
    return Reference(expression).fire_times("UTC", start, end)


def engine(expression: str, start: datetime, end: datetime) -> list[datetime]:
    return list(cron.fire_times(cron.validate_expression(expression), "UTC", start, end))


START = datetime(2026, 1, 1, tzinfo=UTC)

# (expression, span in days)
CASES = [
    ("0 12 */1 * mon", 62),  # Mondays only (was: every day)
    ("0 12 */2 * mon", 62),  # Mondays that are odd days (was: odd days or Mondays)
    ("0 12 * * mon", 31),
    ("0 0 1 * mon", 62),  # both restricted: the 1st or any Monday
    ("0 0 1,15 * */3", 62),  # dow starts with '*': the 1st/15th that are Sun, Wed or Sat
    ("0 9 * * fri-sun", 21),
    ("0 9 * * 5-7", 21),
    ("0 9 * * 7", 21),
    ("0 9 * * 0", 21),
    ("0 9 * * sun-sun", 21),  # Sunday only (croniter: every day)
    ("0 0-0 * * *", 3),  # midnight only (croniter: hourly)
    ("5-5 * * * *", 1),  # minute 5 of every hour (croniter: every minute)
    ("0 9 1 nov-nov *", 366),  # 1 November only (croniter: monthly)
    ("30 6-6/2 * * *", 2),
    ("0 9 */10 * *", 62),
    ("15 3 * feb *", 60),
]


@pytest.mark.parametrize(("expression", "days"), CASES)
def test_engine_matches_the_reference(expression: str, days: int) -> None:
    end = START + timedelta(days=days)
    assert engine(expression, START, end) == reference_fire_times(expression, START, end)


def test_the_issue_examples_fire_on_the_right_days() -> None:
    end = START + timedelta(days=31)
    mondays = engine("0 12 */1 * mon", START, end)
    assert {t.weekday() for t in mondays} == {0} and len(mondays) == 4
    odd_mondays = engine("0 12 */2 * mon", START, end)
    assert [t.day for t in odd_mondays] == [5, 19]
    assert {t.weekday() for t in engine("0 9 * * fri-sun", START, end)} == {4, 5, 6}
    assert len(engine("0 0-0 * * *", START, START + timedelta(days=1))) == 2
    assert len(engine("5-5 * * * *", START, START + timedelta(hours=1))) == 1
    assert [t.date().isoformat() for t in engine("0 9 1 nov-nov *", START, START + timedelta(days=366))] == [
        "2026-11-01"
    ]


def _random_field(rng: random.Random, low: int, high: int) -> str:
    kind = rng.choice(["star", "step", "value", "range", "list", "rangestep"])
    if kind == "star":
        return "*"
    if kind == "step":
        return f"*/{rng.randint(1, max(1, (high - low) // 2))}"
    a = rng.randint(low, high)
    b = rng.randint(a, high)
    if kind == "value":
        return str(a)
    if kind == "range":
        return f"{a}-{b}"
    if kind == "rangestep":
        return f"{a}-{b}/{rng.randint(1, 3)}"
    return ",".join(str(v) for v in sorted({a, b, rng.randint(low, high)}))


def test_random_expressions_match_the_reference() -> None:
    rng = random.Random(12)
    checked = 0
    for _ in range(150):
        expression = " ".join(
            [
                _random_field(rng, 0, 59),
                _random_field(rng, 0, 23),
                _random_field(rng, 1, 31),
                _random_field(rng, 1, 12),
                _random_field(rng, 0, 7),
            ]
        )
        try:
            cron.validate_expression(expression)
        except Exception:
            continue  # e.g. 31 February: never fires
        start = START + timedelta(days=rng.randint(0, 300))
        end = start + timedelta(days=8)
        assert engine(expression, start, end) == reference_fire_times(expression, start, end), expression
        checked += 1
    assert checked > 100


def test_backwards_and_invalid_day_ranges_are_refused() -> None:
    from services.core.errors import UserError

    for expression in ("0 9 * * sat-fri", "0 9 * * 5-0", "0 9 * * sun-8"):
        with pytest.raises(UserError):
            cron.validate_expression(expression)
