"""The chaos suite (issue 15): a short seeded fault-injection run in `make test`; the long one
with `make chaos SEED=… FAULTS=…` (tests.chaos.harness describes both)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from tests import cron_reference as enumerator
from tests.chaos.harness import ChaosRun, summary_json

# The fixture comes from the run-control tests: a counting HTTP server on a free port.
from tests.runcontrol.conftest import counting_server  # noqa: F401


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_the_enumerator_knows_the_documented_dst_rules() -> None:
    # Spring forward in Berlin (02:00 CET → 03:00 CEST at 01:00Z): 02:30 fires once, at 03:00.
    assert enumerator.fire_times(["30 2 * * *"], "Europe/Berlin", utc("2027-03-27T12:00"), utc("2027-03-28T12:00")) == [
        utc("2027-03-28T01:00")
    ]
    # Wildcard times in the gap do not occur: */30 gives 01:00, 01:30 CET, then 03:00 CEST.
    assert enumerator.fire_times(["*/30 * * * *"], "Europe/Berlin", utc("2027-03-27T23:59"), utc("2027-03-28T01:00")) == [
        utc("2027-03-28T00:00"), utc("2027-03-28T00:30"), utc("2027-03-28T01:00"),
    ]
    # Fall back (03:00 CEST → 02:00 CET at 01:00Z): fixed-time once (first pass), wildcard twice.
    assert enumerator.fire_times(["30 2 * * *"], "Europe/Berlin", utc("2027-10-30T12:00"), utc("2027-10-31T12:00")) == [
        utc("2027-10-31T00:30")
    ]
    assert enumerator.fire_times(["30 * * * *"], "Europe/Berlin", utc("2027-10-31T00:00"), utc("2027-10-31T02:00")) == [
        utc("2027-10-31T00:30"), utc("2027-10-31T01:30"),
    ]
    # Vixie day rule: both day fields restricted means either matches.
    fires = enumerator.fire_times(["0 0 13 * fri"], "UTC", utc("2027-08-01T00:00"), utc("2027-08-31T00:00"))
    assert [f.day for f in fires] == [6, 13, 20, 27]


def test_the_enumerator_agrees_with_the_engine_over_the_chaos_schedules() -> None:
    from services.dispatcher import timing
    from tests.chaos.harness import FALL_START, SCHEDULES, SPRING_START

    for start in (SPRING_START, FALL_START):
        end = start + timedelta(hours=3)
        for _, zone, crons in SCHEDULES:
            expected = enumerator.fire_times(crons, zone, start, end)
            # The engine's window is inclusive, the enumerator's starts after `start`.
            engine = timing.fire_times(timing.Timing(crons=tuple(crons), timezone=zone), start + timedelta(minutes=1), end)
            assert [e.astimezone(UTC) for e in engine] == expected
            assert len(expected) > 20


def run_chaos(db, sqs_endpoint, server, tmp_path, seed: int, faults: int, **options) -> None:
    run = ChaosRun(db, sqs_endpoint, server, tmp_path, seed, faults, **options)
    report = run.run()
    print(report.line())
    print(summary_json(report))
    assert report.faults_injected >= faults, report.line()
    assert report.fire_times > 0
    assert report.problems() == [], (report.line(), report.problems(), run.logs_tail())


@pytest.mark.slow
def test_a_short_seeded_chaos_run(db, sqs_endpoint, counting_server, tmp_path) -> None:  # noqa: F811
    run_chaos(db, sqs_endpoint, counting_server, tmp_path, seed=int(os.environ.get("CHAOS_SHORT_SEED", "2")),
              faults=10, settle_seconds=40, max_seconds=40)


@pytest.mark.long  # `make chaos SEED=… FAULTS=…`; not part of `make test`
@pytest.mark.timeout(4 * 3600)  # the harness bounds itself; 500 faults take about a quarter of an hour
def test_the_long_chaos_run(db, sqs_endpoint, counting_server, tmp_path) -> None:  # noqa: F811
    run_chaos(db, sqs_endpoint, counting_server, tmp_path, seed=int(os.environ.get("CHAOS_SEED", "1")),
              faults=int(os.environ.get("CHAOS_FAULTS", "500")), settle_seconds=300)
