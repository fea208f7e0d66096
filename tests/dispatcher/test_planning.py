"""Catch-up, window and jitter decisions, without I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.dispatcher.planning import MAX_CATCHUP_PER_TICK, jitter_delay, plan_fire_times

NOW = datetime(2026, 11, 28, 12, 0, 30, tzinfo=UTC)


def minutes_ago(*minutes: int) -> list[datetime]:
    return sorted(NOW.replace(second=0) - timedelta(minutes=m) for m in minutes)


def test_on_time_fire_time_is_sent_under_every_policy() -> None:
    for policy in ("latest", "all", "none"):
        plan = plan_fire_times(minutes_ago(0), NOW, policy, 86400)
        assert plan.to_send == tuple(minutes_ago(0)), policy


def test_every_on_time_fire_time_is_sent_whatever_the_policy_and_window() -> None:
    now = datetime(2026, 11, 28, 12, 1, tzinfo=UTC)
    due = [now - timedelta(seconds=60), now]  # 60 s late is still on time
    for policy in ("latest", "all", "none"):
        for window in (10, 86400):
            plan = plan_fire_times(due, now, policy, window)
            assert (plan.to_send, plan.drops, plan.resume_from) == (tuple(due), (), None), (policy, window)
    late = plan_fire_times([now - timedelta(seconds=61), now], now, "none", 86400)
    assert late.to_send == (now,) and late.dropped == (now - timedelta(seconds=61),)


def test_latest_sends_only_the_most_recent_missed_time() -> None:
    plan = plan_fire_times(minutes_ago(30, 20, 10), NOW, "latest", 86400)
    assert plan.to_send == (minutes_ago(10)[0],)
    assert len(plan.dropped) == 2


def test_latest_with_an_on_time_run_sends_that_one_run() -> None:
    plan = plan_fire_times(minutes_ago(20, 10, 0), NOW, "latest", 86400)
    assert plan.to_send == (minutes_ago(0)[0],)


def test_all_sends_every_missed_time_oldest_first() -> None:
    due = minutes_ago(30, 20, 10, 0)
    plan = plan_fire_times(due, NOW, "all", 86400)
    assert plan.to_send == tuple(due)
    assert plan.resume_from is None


def test_all_is_capped_per_tick_and_resumes_where_it_stopped() -> None:
    due = minutes_ago(*range(150, 0, -1))
    plan = plan_fire_times(due, NOW, "all", 86400)
    assert plan.to_send == tuple(due[:MAX_CATCHUP_PER_TICK])
    assert plan.resume_from == due[MAX_CATCHUP_PER_TICK]


def test_none_drops_missed_times() -> None:
    plan = plan_fire_times(minutes_ago(30, 20), NOW, "none", 86400)
    assert plan.to_send == ()
    assert len(plan.dropped) == 2


def test_times_older_than_the_window_never_run() -> None:
    plan = plan_fire_times(minutes_ago(120, 50, 40), NOW, "all", 3600)
    assert plan.to_send == tuple(minutes_ago(50, 40))
    assert plan.dropped == tuple(minutes_ago(120))


def test_a_fire_time_seen_more_than_60s_late_is_missed() -> None:
    exactly_60 = [NOW - timedelta(seconds=60)]
    assert plan_fire_times(exactly_60, NOW, "none", 86400).to_send == tuple(exactly_60)
    late = [NOW - timedelta(seconds=61)]
    assert plan_fire_times(late, NOW, "none", 86400).to_send == ()


def test_jitter_is_deterministic_and_bounded() -> None:
    schedule_id = uuid.uuid4()
    fire_time = NOW.replace(second=0)
    delays = {jitter_delay(schedule_id, fire_time + timedelta(minutes=i), 900) for i in range(200)}
    assert all(0 <= d <= 900 for d in delays)
    assert len(delays) > 100  # spread, not constant
    assert jitter_delay(schedule_id, fire_time, 900) == jitter_delay(schedule_id, fire_time, 900)
    assert jitter_delay(schedule_id, fire_time, 0) == 0


def test_one_search_gives_the_due_times_and_the_next_as_two_would() -> None:
    """The tick's `fire_times_and_next` against `fire_times` + `next_fire_time`, for every kind
    of timing and bound, across a DST change (Berlin, 2026-10-25)."""
    from services.dispatcher import timing

    start, end = datetime(2026, 10, 24, 23, 0, tzinfo=UTC), datetime(2026, 10, 25, 3, 0, 30, tzinfo=UTC)
    at = lambda h, m=0: datetime(2026, 10, 25, h, m, tzinfo=UTC)  # noqa: E731
    cases = [
        timing.Timing(("30 2 * * *",), "Europe/Berlin"),
        timing.Timing(("*/20 2 * * *", "0 3 * * *"), "Europe/Berlin"),  # two expressions, one instant shared
        timing.Timing(("*/15 * * * *",), "Europe/Berlin", end_at=at(1, 50)),  # ends inside the window
        timing.Timing(("*/15 * * * *",), "Europe/Berlin", end_at=at(3, 0)),  # ends right after
        timing.Timing(("*/15 * * * *",), "Europe/Berlin", start_at=at(1, 10)),  # starts inside the window
        timing.Timing(interval_seconds=5400, anchor_at=at(0, 7)),
        timing.Timing(run_at=at(2, 30)),
    ]
    for case in cases:
        expected = (timing.fire_times(case, start, end), timing.next_fire_time(case, end))
        assert timing.fire_times_and_next(case, start, end) == expected, case
