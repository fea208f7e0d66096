"""The dispatcher end to end: Postgres, SQS over HTTP (moto server), `wfctl dispatch --now` ticks."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from services.core.db.models import Schedule
from services.core.db.session import session_factory
from services.core.queue import Queue
from services.dispatcher.tick import tick
from tests.dispatcher.helpers import make_schedule, minutes, run_ticks, scheduled_for, sent_bodies


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def queue(queues) -> Queue:
    return Queue(queues.client, queues.queue_url)


# --- the acceptance cases: minute-by-minute ticks across both 2026 transitions -------

def test_berlin_0230_runs_once_on_each_transition_day(db, queues, queue) -> None:
    make_schedule(db, utc(2026, 3, 28, 21), cron="30 2 * * *", timezone="Europe/Berlin")
    run_ticks(db, queue, minutes(utc(2026, 3, 28, 22), utc(2026, 3, 29, 22)))
    assert scheduled_for(queues) == ["2026-03-29T01:00:00Z"]  # 03:00 CEST, after the gap

    with session_factory(db)() as s, s.begin():
        s.execute(Schedule.__table__.update().values(next_run_at=utc(2026, 10, 24, 22, 30)))
    run_ticks(db, queue, minutes(utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)))
    assert scheduled_for(queues) == ["2026-10-25T00:30:00Z"]  # 02:30 CEST, the first pass


def test_berlin_every_30_minutes_across_fall_back_and_spring_forward(db, queues, queue) -> None:
    make_schedule(db, utc(2026, 10, 24, 23, 45), cron="*/30 * * * *", timezone="Europe/Berlin")
    # The repeated hour 02:00-03:00 local is 00:00-02:00 UTC.
    run_ticks(db, queue, minutes(utc(2026, 10, 24, 23, 46), utc(2026, 10, 25, 1, 59)))
    assert scheduled_for(queues) == [
        "2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z",
    ]
    with session_factory(db)() as s, s.begin():
        s.execute(Schedule.__table__.update().values(next_run_at=utc(2026, 3, 28, 23, 30)))
    # The skipped hour 02:00-03:00 CET does not exist: 00:30 UTC is 01:30, 01:00 UTC is 03:00.
    run_ticks(db, queue, minutes(utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 1, 45)))
    assert scheduled_for(queues) == [
        "2026-03-28T23:30:00Z", "2026-03-29T00:00:00Z", "2026-03-29T00:30:00Z",
        "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z",
    ]


@pytest.mark.parametrize(
    ("zone", "expression", "created", "start", "end", "expected"),
    [
        ("America/New_York", "30 2 * * *", utc(2026, 3, 7, 12), utc(2026, 3, 8, 5), utc(2026, 3, 8, 9),
         ["2026-03-08T07:00:00Z"]),
        ("America/New_York", "30 1 * * *", utc(2026, 10, 31, 12), utc(2026, 11, 1, 4), utc(2026, 11, 1, 8),
         ["2026-11-01T05:30:00Z"]),
        ("America/New_York", "*/30 1 * * *", utc(2026, 10, 31, 12), utc(2026, 11, 1, 4), utc(2026, 11, 1, 8),
         ["2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:00:00Z", "2026-11-01T06:30:00Z"]),
        ("Australia/Lord_Howe", "15 2 * * *", utc(2026, 10, 3, 12), utc(2026, 10, 3, 14), utc(2026, 10, 3, 17),
         ["2026-10-03T15:30:00Z"]),
        ("Australia/Lord_Howe", "45 1 * * *", utc(2026, 4, 4, 10), utc(2026, 4, 4, 13), utc(2026, 4, 4, 16),
         ["2026-04-04T14:45:00Z"]),
        ("Australia/Lord_Howe", "*/20 1 * * *", utc(2026, 4, 4, 10), utc(2026, 4, 4, 13), utc(2026, 4, 4, 16),
         # Only 01:30-02:00 repeats (a 30-minute shift): 01:40 fires twice, 01:00 and 01:20 once.
         ["2026-04-04T14:00:00Z", "2026-04-04T14:20:00Z", "2026-04-04T14:40:00Z", "2026-04-04T15:10:00Z"]),
    ],
)
def test_dst_rules_through_dispatch_ticks(db, queues, queue, zone, expression, created, start, end, expected) -> None:
    make_schedule(db, created, cron=expression, timezone=zone)
    run_ticks(db, queue, minutes(start, end))
    assert scheduled_for(queues) == expected


# --- the message ----------------------------------------------------------------------------

def test_message_matches_the_contract(db, queues, wfctl) -> None:
    schedule_id = make_schedule(db, utc(2026, 11, 28, 8, 50), cron="0 9 * * *", input={"region": "eu"})
    result = wfctl("dispatch", "--now", "2026-11-28T09:00:04Z")
    assert result.code == 0, result.err
    assert result.out.startswith("dispatch: 1 schedules claimed, 1 messages sent")
    [body] = sent_bodies(queues)
    assert body == {
        "version": 1,
        "trigger": "schedule",
        "dedup_key": f"schedule:{schedule_id}:2026-11-28T09:00:00Z",
        "workflow_id": body["workflow_id"],
        "schedule_id": schedule_id,
        "scheduled_for": "2026-11-28T09:00:00Z",
        "attempt": 1,
        "retry_of": None,
        "input": {"region": "eu"},
    }


def test_a_tick_with_nothing_due_sends_nothing_and_a_repeat_tick_sends_nothing_new(db, queues, wfctl) -> None:
    make_schedule(db, utc(2026, 11, 28, 8, 50), cron="0 9 * * *")
    assert "0 messages sent" in wfctl("dispatch", "--now", "2026-11-28T08:59:59Z").out
    assert "1 messages sent" in wfctl("dispatch", "--now", "2026-11-28T09:00:01Z").out
    assert "0 messages sent" in wfctl("dispatch", "--now", "2026-11-28T09:00:40Z").out
    assert len(sent_bodies(queues)) == 1


# --- catch-up after downtime ----------------------------------------------------------------

def test_catchup_latest_runs_the_most_recent_missed_time(db, queues, wfctl) -> None:
    make_schedule(db, utc(2026, 11, 28, 8, 0, 30), cron="*/10 * * * *")
    assert wfctl("dispatch", "--now", "2026-11-28T09:05:00Z").code == 0
    assert scheduled_for(queues) == ["2026-11-28T09:00:00Z"]


def test_catchup_all_runs_every_missed_time_oldest_first(db, queues, wfctl) -> None:
    make_schedule(db, utc(2026, 11, 28, 8, 0, 30), cron="*/10 * * * *", catchup="all")
    assert wfctl("dispatch", "--now", "2026-11-28T09:05:00Z").code == 0
    bodies = sent_bodies(queues)
    assert sorted(b["scheduled_for"] for b in bodies) == [
        f"2026-11-28T08:{m}:00Z" for m in ("10", "20", "30", "40", "50")
    ] + ["2026-11-28T09:00:00Z"]


def test_catchup_all_sends_at_most_100_per_tick_then_continues(db, queues, queue) -> None:
    make_schedule(db, utc(2026, 11, 28, 0, 0, 30), cron="* * * * *", catchup="all")
    maker = session_factory(db)
    first = tick(maker, queue, now=utc(2026, 11, 28, 3, 0, 30))  # 180 missed minutes
    assert first.messages_sent == 100
    second = tick(maker, queue, now=utc(2026, 11, 28, 3, 1, 30))
    assert second.messages_sent == 81  # 01:41 .. 03:01
    times = scheduled_for(queues)
    assert len(times) == len(set(times)) == 181
    assert times[0] == "2026-11-28T00:01:00Z" and times[-1] == "2026-11-28T03:01:00Z"


def test_catchup_none_drops_missed_times(db, queues, wfctl) -> None:
    make_schedule(db, utc(2026, 11, 28, 8, 0, 30), cron="*/10 * * * *", catchup="none")
    assert "0 messages sent" in wfctl("dispatch", "--now", "2026-11-28T09:05:00Z").out
    assert "1 messages sent" in wfctl("dispatch", "--now", "2026-11-28T09:10:20Z").out
    assert scheduled_for(queues) == ["2026-11-28T09:10:00Z"]


def test_catchup_window_bounds_what_runs(db, queues, wfctl) -> None:
    make_schedule(
        db, utc(2026, 11, 27, 0, 0, 30), cron="0 * * * *", catchup="all", catchup_window_seconds=3 * 3600
    )
    assert wfctl("dispatch", "--now", "2026-11-28T12:30:00Z").code == 0
    assert scheduled_for(queues) == ["2026-11-28T10:00:00Z", "2026-11-28T11:00:00Z", "2026-11-28T12:00:00Z"]


# --- jitter ---------------------------------------------------------------------------------

def test_jitter_delays_the_message_deterministically(db, queues, queue) -> None:
    make_schedule(db, utc(2026, 11, 28, 8, 50), cron="0 9 * * *", jitter_seconds=2)
    summary = tick(session_factory(db), queue, now=utc(2026, 11, 28, 9, 0, 5))
    assert summary.messages_sent == 1
    # Delayed messages are invisible for up to 2 s; bounded wait until it shows.
    received = queues.client.receive_message(QueueUrl=queues.queue_url, WaitTimeSeconds=3).get("Messages", [])
    assert [json.loads(m["Body"])["scheduled_for"] for m in received] == ["2026-11-28T09:00:00Z"]


# --- delivery guarantees --------------------------------------------------------------------

class Crash(Exception):
    pass


def test_killed_between_send_and_commit_resends_the_same_dedup_keys(db, queues, queue) -> None:
    make_schedule(db, utc(2026, 11, 28, 8, 50), cron="*/5 * * * *")
    maker = session_factory(db)

    def crash() -> None:
        raise Crash

    with pytest.raises(Crash):
        tick(maker, queue, now=utc(2026, 11, 28, 9, 0, 10), after_send=crash)
    first = [b["dedup_key"] for b in sent_bodies(queues)]
    assert len(first) == 1
    tick(maker, queue, now=utc(2026, 11, 28, 9, 0, 40))
    again = [b["dedup_key"] for b in sent_bodies(queues)]
    assert again == first  # the same fire time, the same key: the spawner absorbs the repeat
    tick(maker, queue, now=utc(2026, 11, 28, 9, 1, 10))
    assert sent_bodies(queues) == []


def test_two_concurrent_ticks_send_each_fire_time_once(db, queues, queue) -> None:
    for index in range(30):
        make_schedule(db, utc(2026, 11, 28, 8, 50), name=f"s{index}", cron="0 9 * * *")
    maker = session_factory(db)
    barrier = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            tick(maker, Queue(queues.client, queues.queue_url), now=utc(2026, 11, 28, 9, 0, 5), batch_size=7)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    keys = [b["dedup_key"] for b in sent_bodies(queues)]
    assert len(keys) == 30 and len(set(keys)) == 30


# --- pause, resume, backfill -----------------------------------------------------------------

def test_paused_schedule_sends_nothing_and_resume_does_not_replay(db, queues, queue, wfctl) -> None:
    make_schedule(db, utc(2026, 11, 28, 8, 50), cron="* * * * *")
    assert wfctl("schedules", "pause", "nightly").code == 0
    run_ticks(db, queue, minutes(utc(2026, 11, 28, 8, 51), utc(2026, 11, 28, 9, 10)))
    assert sent_bodies(queues) == []
    # Resume uses the real clock: next fire time is after now, so the pause is never replayed.
    assert wfctl("schedules", "resume", "nightly").code == 0
    with session_factory(db)() as s:
        schedule = s.scalar(select(Schedule))
        assert schedule is not None and schedule.enabled
        assert schedule.next_run_at > datetime.now(UTC)
    tick(session_factory(db), queue, now=datetime.now(UTC))
    assert sent_bodies(queues) == []


def test_resume_continues_from_now(db, queues, queue) -> None:
    from services.dispatcher.schedules import pause_schedule, resume_schedule

    make_schedule(db, utc(2026, 11, 28, 8, 50), cron="*/10 * * * *", catchup="all")
    with session_factory(db)() as s, s.begin():
        pause_schedule(s, "nightly")
    run_ticks(db, queue, minutes(utc(2026, 11, 28, 9, 0), utc(2026, 11, 28, 10, 0)))
    with session_factory(db)() as s, s.begin():
        resume_schedule(s, "nightly", now=utc(2026, 11, 28, 10, 5))
    run_ticks(db, queue, minutes(utc(2026, 11, 28, 10, 5), utc(2026, 11, 28, 10, 21)))
    assert scheduled_for(queues) == ["2026-11-28T10:10:00Z", "2026-11-28T10:20:00Z"]


def test_backfill_sends_each_fire_time_once_and_never_repeats_a_run(db, queues, wfctl) -> None:
    from services.core.executions import insert_execution
    from services.core.messages import parse_message

    make_schedule(db, utc(2026, 11, 1), cron="0 */6 * * *", catchup="none", catchup_window_seconds=60)
    result = wfctl("schedules", "backfill", "nightly", "--from", "2026-11-02T00:00:00Z", "--to", "2026-11-03T00:00:00Z")
    assert result.code == 0, result.err
    assert "5 fire times, 5 enqueued, 0 already ran" in result.out
    bodies = sent_bodies(queues)
    assert sorted(b["scheduled_for"] for b in bodies) == [
        "2026-11-02T00:00:00Z", "2026-11-02T06:00:00Z", "2026-11-02T12:00:00Z", "2026-11-02T18:00:00Z",
        "2026-11-03T00:00:00Z",
    ]
    assert {b["trigger"] for b in bodies} == {"backfill"}
    assert all(b["dedup_key"].startswith("schedule:") for b in bodies)
    # Two of them ran (the spawner recorded them); a second backfill enqueues only the rest.
    with session_factory(db)() as s, s.begin():
        for body in bodies[:2]:
            insert_execution(s, parse_message(json.dumps(body)))
    again = wfctl("schedules", "backfill", "nightly", "--from", "2026-11-02T00:00:00Z", "--to", "2026-11-03T00:00:00Z")
    assert "5 fire times, 3 enqueued, 2 already ran" in again.out
    assert len(sent_bodies(queues)) == 3


def test_backfill_naive_times_are_read_in_the_schedule_time_zone(db, queues, wfctl) -> None:
    make_schedule(db, utc(2026, 11, 1), cron="0 9 * * *", timezone="America/New_York")
    result = wfctl("schedules", "backfill", "nightly", "--from", "2026-11-05T09:00", "--to", "2026-11-05T09:00")
    assert result.code == 0, result.err
    assert scheduled_for(queues) == ["2026-11-05T14:00:00Z"]


def test_a_failed_send_exits_non_zero_and_commits_nothing(db, queues, wfctl, monkeypatch) -> None:
    make_schedule(db, utc(2026, 11, 28, 8, 50), cron="0 9 * * *")
    monkeypatch.setenv("QUEUE_URL", queues.queue_url + "-missing")
    result = wfctl("dispatch", "--now", "2026-11-28T09:00:05Z")
    assert result.code != 0
    with session_factory(db)() as s:
        schedule = s.scalar(select(Schedule))
        assert schedule is not None and schedule.next_run_at == utc(2026, 11, 28, 9, 0)


def test_retry_due_is_enqueued_once(db, queues, queue) -> None:
    from services.core.db.models import Execution, ExecutionStatus, Workflow

    make_schedule(db, utc(2026, 11, 28, 8, 50), cron="0 0 1 1 *")
    maker = session_factory(db)
    with maker() as s, s.begin():
        workflow = s.scalar(select(Workflow))
        assert workflow is not None
        failed = Execution(
            workflow_id=workflow.id, trigger="manual", dedup_key="manual:x", attempt=1,
            status=ExecutionStatus.FAILED.value, input={"a": 1},
            next_retry_at=utc(2026, 11, 28, 9, 0, 30),
        )
        s.add(failed)
        s.flush()
        failed_id = failed.id
    assert tick(maker, queue, now=utc(2026, 11, 28, 9, 0, 10)).retries_sent == 0
    assert tick(maker, queue, now=utc(2026, 11, 28, 9, 1, 0)).retries_sent == 1
    assert tick(maker, queue, now=utc(2026, 11, 28, 9, 2, 0)).retries_sent == 0
    [body] = sent_bodies(queues)
    assert body["trigger"] == "retry"
    assert body["dedup_key"] == f"retry:{failed_id}:2"
    assert body["attempt"] == 2 and body["retry_of"] == str(failed_id) and body["input"] == {"a": 1}


@pytest.mark.parametrize("window", [0, 30])
def test_a_catchup_window_under_a_minute_still_runs_on_time_fire_times(db, queues, queue, window) -> None:
    # The tick lands a few seconds after the minute, as the CronJob always does: the fire time
    # is on time (not missed), so the catch-up window, which bounds missed times, must not drop it.
    make_schedule(db, utc(2026, 11, 28, 8, 50), cron="0 9 * * *", catchup_window_seconds=window)
    summary = tick(session_factory(db), queue, now=utc(2026, 11, 28, 9, 0, 45))
    assert summary.messages_sent == 1
    assert scheduled_for(queues) == ["2026-11-28T09:00:00Z"]


def test_summary_is_a_json_event_in_the_cluster(db, queues, wfctl, monkeypatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "json")
    make_schedule(db, utc(2026, 11, 28, 8, 50), cron="0 9 * * *")
    result = wfctl("dispatch", "--now", "2026-11-28T09:00:04Z")
    assert result.code == 0, result.err
    events = [json.loads(line) for line in result.err.strip().splitlines()]
    [event] = [e for e in events if "schedules_claimed" in e]
    assert (event["service"], event["schedules_claimed"], event["messages_sent"]) == ("dispatcher", 1, 1)
    assert event["message"].startswith("dispatch: 1 schedules claimed")


def test_summary_as_json_for_programs(db, queues, wfctl) -> None:
    """`wfctl local up` reads a tick's outcome from `--output json`, not from its log line."""
    make_schedule(db, utc(2026, 11, 28, 8, 50), cron="0 9 * * *")
    result = wfctl("dispatch", "--now", "2026-11-28T09:00:04Z", "--output", "json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert (summary["schedules_claimed"], summary["messages_sent"], summary["fire_times_dropped"]) == (1, 1, 0)
