"""Schedule lifecycle: edits in place, several expressions, interval, one-off, bounds, the
fire-time ledger and backfill --reprocess, through real ticks on Postgres and SQS (moto)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from services.core.db.models import Execution, ExecutionStatus, FireTime, Schedule
from services.core.db.session import session_factory
from services.core.executions import insert_execution
from services.core.messages import parse_message
from services.core.queue import Queue
from services.dispatcher import schedules as service
from services.dispatcher.tick import tick
from tests.dispatcher.helpers import make_schedule, minutes, run_ticks, scheduled_for, sent_bodies


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def queue(queues) -> Queue:
    return Queue(queues.client, queues.queue_url)


def ledger(db: str) -> list[tuple[str, str, str | None]]:
    """(fire time, decision, reason) of every ledger entry, by fire time."""
    with session_factory(db)() as s:
        rows = s.scalars(select(FireTime).order_by(FireTime.fire_time, FireTime.id))
        return [(r.fire_time.strftime("%Y-%m-%dT%H:%M:%SZ"), r.decision, r.reason) for r in rows]


def update(db: str, now: datetime, **changes) -> list[str]:
    with session_factory(db)() as s, s.begin():
        _, changed = service.update_schedule(s, "nightly", changes, now=now)
        return changed


# --- edits keep identity ----------------------------------------------------------------------

def test_an_edit_at_0959_30_neither_refires_0900_nor_skips_1000(db, queues, queue) -> None:
    schedule_id = make_schedule(db, utc(2026, 11, 28, 8, 50), cron="0 * * * *")
    maker = session_factory(db)
    tick(maker, queue, now=utc(2026, 11, 28, 9, 0, 5))
    assert scheduled_for(queues) == ["2026-11-28T09:00:00Z"]
    # Edit the timing (a second expression, another zone) just before 10:00.
    changed = update(db, utc(2026, 11, 28, 9, 59, 30), cron=["0 * * * *", "30 * * * *"], timezone="Europe/London")
    assert changed == ["cron", "timezone"]
    run_ticks(db, queue, minutes(utc(2026, 11, 28, 9, 59), utc(2026, 11, 28, 10, 31)))
    bodies = sent_bodies(queues)
    assert sorted(b["scheduled_for"] for b in bodies) == ["2026-11-28T10:00:00Z", "2026-11-28T10:30:00Z"]
    # Same id, so the same dedup keys as before the edit.
    assert {b["dedup_key"].split(":")[1] for b in bodies} == {schedule_id}
    assert [e for e in ledger(db) if e[1] == "dropped"] == []


def test_an_edit_drops_due_but_undispatched_times_and_records_them(db, queues, queue) -> None:
    make_schedule(db, utc(2026, 11, 28, 8, 50), cron="*/10 * * * *")
    # The dispatcher was down since 09:00; the edit at 09:25 recomputes from its own instant.
    update(db, utc(2026, 11, 28, 9, 25), cron="*/15 * * * *")
    run_ticks(db, queue, minutes(utc(2026, 11, 28, 9, 25), utc(2026, 11, 28, 9, 46)))
    assert scheduled_for(queues) == ["2026-11-28T09:30:00Z", "2026-11-28T09:45:00Z"]
    dropped = [(t, r) for t, d, r in ledger(db) if d == "dropped"]
    assert dropped == [("2026-11-28T09:00:00Z", "edited"), ("2026-11-28T09:10:00Z", "edited"),
                       ("2026-11-28T09:20:00Z", "edited")]


def test_an_input_only_edit_keeps_the_next_fire_time(db) -> None:
    make_schedule(db, utc(2026, 11, 28, 8, 50), cron="0 9 * * *")
    assert update(db, utc(2026, 11, 28, 8, 55), input={"k": 2}) == ["input"]
    with session_factory(db)() as s:
        schedule = s.scalar(select(Schedule))
        assert schedule is not None and schedule.next_run_at == utc(2026, 11, 28, 9) and schedule.input == {"k": 2}
    assert update(db, utc(2026, 11, 28, 8, 56), input={"k": 2}) == []


# --- richer specs --------------------------------------------------------------------------

def test_several_expressions_fire_once_per_instant(db, queues, queue) -> None:
    # 2026-11-30 is a Monday: all three expressions match 09:00.
    make_schedule(db, utc(2026, 11, 30, 8), cron=["0 9 * * *", "0 9 * * mon", "*/30 9 * * *"])
    run_ticks(db, queue, minutes(utc(2026, 11, 30, 8, 59), utc(2026, 11, 30, 10, 1)))
    assert scheduled_for(queues) == ["2026-11-30T09:00:00Z", "2026-11-30T09:30:00Z"]


def test_every_keeps_real_time_spacing_across_a_dst_change(db, queues, queue) -> None:
    # Berlin springs forward at 02:00 CET (01:00Z) on 2026-03-29.
    make_schedule(
        db, utc(2026, 3, 28, 20), cron=None, every="90m", timezone="Europe/Berlin",
        start_at="2026-03-29T00:00:00",
    )
    run_ticks(db, queue, minutes(utc(2026, 3, 28, 22, 59), utc(2026, 3, 29, 3, 31)))
    times = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in scheduled_for(queues)]
    assert [t.strftime("%H:%M") for t in times] == ["23:00", "00:30", "02:00", "03:30"]
    assert {b - a for a, b in zip(times, times[1:], strict=False)} == {timedelta(minutes=90)}
    local = [t.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M") for t in times]
    assert local == ["00:00", "01:30", "04:00", "05:30"]  # the wall clock jumped, the spacing did not


def test_at_fires_once_and_the_schedule_completes(db, queues, queue) -> None:
    make_schedule(db, utc(2026, 11, 28, 9), cron=None, at="2026-11-28T09:30:00Z")
    run_ticks(db, queue, minutes(utc(2026, 11, 28, 9, 0), utc(2026, 11, 28, 10, 0)))
    assert scheduled_for(queues) == ["2026-11-28T09:30:00Z"]
    with session_factory(db)() as s:
        schedule = s.scalar(select(Schedule))
        assert schedule is not None
        assert schedule.next_run_at is None and schedule.completed_at == utc(2026, 11, 28, 9, 30, 5)
        assert service.schedule_summary(schedule)["state"] == "completed"
        assert service.preview_fire_times(schedule, 3, after=utc(2026, 11, 28, 10)) == []


def test_start_and_end_bound_a_cron_schedule(db, queues, queue) -> None:
    make_schedule(
        db, utc(2026, 11, 28, 7), cron="0 * * * *", start_at="2026-11-28T10:00:00Z", end_at="2026-11-28T12:00:00Z"
    )
    with session_factory(db)() as s:
        schedule = s.scalar(select(Schedule))
        assert schedule is not None
        assert service.preview_fire_times(schedule, 5, after=utc(2026, 11, 28, 7)) == [
            utc(2026, 11, 28, 10), utc(2026, 11, 28, 11), utc(2026, 11, 28, 12),
        ]
    run_ticks(db, queue, minutes(utc(2026, 11, 28, 7, 59), utc(2026, 11, 28, 14, 1)))
    assert scheduled_for(queues) == ["2026-11-28T10:00:00Z", "2026-11-28T11:00:00Z", "2026-11-28T12:00:00Z"]


# --- the ledger ----------------------------------------------------------------------------

def test_ledger_records_sent_and_every_catchup_reason(db, queues, queue) -> None:
    maker = session_factory(db)
    make_schedule(db, utc(2026, 11, 28, 0, 0, 30), name="latest", cron="0 * * * *", catchup_window_seconds=4 * 3600)
    make_schedule(db, utc(2026, 11, 28, 0, 0, 30), name="none", cron="0 * * * *", catchup="none")
    tick(maker, queue, now=utc(2026, 11, 28, 6, 0, 10))
    entries = {}
    with maker() as s:
        for row in s.execute(select(Schedule.name, FireTime.fire_time, FireTime.decision, FireTime.reason)
                             .join(FireTime, FireTime.schedule_id == Schedule.id).order_by(FireTime.fire_time)):
            entries.setdefault(row.name, []).append((row.fire_time.hour, row.decision, row.reason))
    assert entries["latest"] == [
        # 02:00 is 4h00m10s old at 06:00:10: outside the 4-hour window too.
        (1, "dropped", "outside_window"), (2, "dropped", "outside_window"),
        (3, "dropped", "superseded_latest"),
        (4, "dropped", "superseded_latest"), (5, "dropped", "superseded_latest"),
        (6, "sent", None),
    ]
    assert entries["none"] == [(h, "dropped", "catchup_none") for h in range(1, 6)] + [(6, "sent", None)]


def test_ledger_records_paused_times_on_resume(db, queues, queue) -> None:
    make_schedule(db, utc(2026, 11, 28, 8, 50), cron="*/20 * * * *")
    with session_factory(db)() as s, s.begin():
        service.pause_schedule(s, "nightly")
    run_ticks(db, queue, minutes(utc(2026, 11, 28, 9), utc(2026, 11, 28, 10)))
    with session_factory(db)() as s, s.begin():
        service.resume_schedule(s, "nightly", now=utc(2026, 11, 28, 10, 5))
    assert ledger(db) == [
        ("2026-11-28T09:00:00Z", "dropped", "paused"), ("2026-11-28T09:20:00Z", "dropped", "paused"),
        ("2026-11-28T09:40:00Z", "dropped", "paused"), ("2026-11-28T10:00:00Z", "dropped", "paused"),
    ]
    assert sent_bodies(queues) == []


def test_a_pause_by_apply_records_the_due_times_it_holds_back(db, queues, queue) -> None:
    """`paused: true` in `wfctl apply` while fire times are due but unsent (the dispatcher was
    down): as with `wfctl schedules pause`, the resume records them; they are not lost."""
    from services.dispatcher.apply import apply_documents, parse_documents

    make_schedule(db, utc(2026, 11, 28, 8, 50), cron="*/20 * * * *")

    def apply(paused: bool, now: datetime) -> None:
        document = f"kind: Schedule\nname: nightly\nworkflow: nightly\ncron: '*/20 * * * *'\npaused: {paused}\n"
        with session_factory(db)() as s, s.begin():
            apply_documents(s, parse_documents([("fleet.yaml", document)]), now=now)

    apply(True, utc(2026, 11, 28, 9, 45))  # 09:00, 09:20 and 09:40 are due and unsent
    run_ticks(db, queue, minutes(utc(2026, 11, 28, 9, 46), utc(2026, 11, 28, 10, 1)))
    apply(False, utc(2026, 11, 28, 10, 5))
    assert ledger(db) == [
        ("2026-11-28T09:00:00Z", "dropped", "paused"), ("2026-11-28T09:20:00Z", "dropped", "paused"),
        ("2026-11-28T09:40:00Z", "dropped", "paused"), ("2026-11-28T10:00:00Z", "dropped", "paused"),
    ]
    assert sent_bodies(queues) == []
    with session_factory(db)() as s:
        assert s.scalar(select(Schedule.next_run_at)) == utc(2026, 11, 28, 10, 20)


def test_catchup_all_with_overlap_skip_records_each_skipped_run(db, queues, queue) -> None:
    """No silent loss: the runs overlap skips are in the ledger as dropped (overlap_skip)."""
    from services.spawner.overlap import apply_overlap

    make_schedule(db, utc(2026, 11, 28, 8, 0, 30), cron="*/20 * * * *", catchup="all", overlap="skip")
    tick(session_factory(db), queue, now=utc(2026, 11, 28, 9, 5))
    bodies = sorted(sent_bodies(queues), key=lambda b: b["scheduled_for"])
    assert [b["scheduled_for"][11:16] for b in bodies] == ["08:20", "08:40", "09:00"]
    maker = session_factory(db)
    for body in bodies:  # the spawner's order of work: insert, then the overlap decision
        with maker() as s, s.begin():
            execution, _ = insert_execution(s, parse_message(json.dumps(body)))
            apply_overlap(s, s.get_one(Execution, execution.id))
    assert [(t[11:16], d, r) for t, d, r in ledger(db)] == [
        ("08:20", "sent", None),
        ("08:40", "sent", None), ("08:40", "dropped", "overlap_skip"),
        ("09:00", "sent", None), ("09:00", "dropped", "overlap_skip"),
    ]


def test_catchup_all_with_overlap_replace_records_each_replaced_run(db, queues, queue) -> None:
    from services.spawner.overlap import apply_overlap

    make_schedule(db, utc(2026, 11, 28, 8, 20, 30), cron="*/20 * * * *", catchup="all", overlap="replace")
    tick(session_factory(db), queue, now=utc(2026, 11, 28, 9, 5))
    maker = session_factory(db)
    for body in sorted(sent_bodies(queues), key=lambda b: b["scheduled_for"]):
        with maker() as s, s.begin():
            execution, _ = insert_execution(s, parse_message(json.dumps(body)))
            apply_overlap(s, s.get_one(Execution, execution.id))
    assert [(t[11:16], d, r) for t, d, r in ledger(db) if d == "dropped"] == [("08:40", "dropped", "overlap_replace")]


def test_backfill_outside_start_and_end_is_recorded_not_run(db, queues, wfctl) -> None:
    make_schedule(
        db, utc(2026, 11, 1), cron="0 0 * * *", start_at="2026-11-03T00:00:00Z", end_at="2026-11-04T12:00:00Z"
    )
    result = wfctl("schedules", "backfill", "nightly", "--from", "2026-11-01T00:00:00Z", "--to", "2026-11-06T00:00:00Z")
    assert result.code == 0, result.err
    assert "2 fire times, 2 enqueued, 0 already ran, 4 outside start/end" in result.out
    assert scheduled_for(queues) == ["2026-11-03T00:00:00Z", "2026-11-04T00:00:00Z"]
    assert [e for e in ledger(db) if e[1] == "dropped"] == [
        ("2026-11-01T00:00:00Z", "dropped", "before_start"), ("2026-11-02T00:00:00Z", "dropped", "before_start"),
        ("2026-11-05T00:00:00Z", "dropped", "after_end"), ("2026-11-06T00:00:00Z", "dropped", "after_end"),
    ]
    assert [e[0] for e in ledger(db) if e[1] == "sent"] == ["2026-11-03T00:00:00Z", "2026-11-04T00:00:00Z"]


def test_history_lists_decisions_with_their_executions(db, queues, queue, wfctl) -> None:
    make_schedule(db, utc(2026, 11, 28, 8, 0, 30), cron="*/30 * * * *", catchup="none")
    tick(session_factory(db), queue, now=utc(2026, 11, 28, 9, 0, 10))
    [body] = sent_bodies(queues)
    with session_factory(db)() as s, s.begin():
        execution, _ = insert_execution(s, parse_message(json.dumps(body)))
        execution_id = str(execution.id)
    rows = wfctl("schedules", "history", "nightly", "-o", "json").json()
    assert [(r["fire_time"], r["decision"], r["reason"], r["execution_id"], r["status"]) for r in rows] == [
        ("2026-11-28T09:00:00Z", "sent", None, execution_id, "pending"),
        ("2026-11-28T08:30:00Z", "dropped", "catchup_none", None, None),
    ]
    bounded = wfctl("schedules", "history", "nightly", "--from", "2026-11-28T08:00:00Z",
                    "--to", "2026-11-28T08:45:00Z", "-o", "json").json()
    assert [r["fire_time"] for r in bounded] == ["2026-11-28T08:30:00Z"]
    assert "catchup_none" in wfctl("schedules", "history", "nightly").out


def test_ledger_retention_is_configurable_and_pruned_by_the_tick(db, queues, queue, monkeypatch) -> None:
    schedule_id = make_schedule(db, utc(2026, 11, 28, 8, 50), cron="0 9 * * *")
    now = utc(2026, 11, 28, 8, 55)
    with session_factory(db)() as s, s.begin():
        for days in (10, 100):
            s.add(FireTime(schedule_id=schedule_id, fire_time=now - timedelta(days=days), decision="sent",
                           decided_at=now - timedelta(days=days)))
    monkeypatch.setenv("FIRE_TIME_RETENTION_DAYS", "200")
    assert tick(session_factory(db), queue, now=now).ledger_pruned == 0
    monkeypatch.delenv("FIRE_TIME_RETENTION_DAYS")  # default: 90 days
    assert tick(session_factory(db), queue, now=now).ledger_pruned == 1
    monkeypatch.setenv("FIRE_TIME_RETENTION_DAYS", "5")
    assert tick(session_factory(db), queue, now=now).ledger_pruned == 1
    assert ledger(db) == []


# --- backfill --reprocess --------------------------------------------------------------------

def _finish(db: str, dedup_key: str, status: ExecutionStatus) -> None:
    with session_factory(db)() as s, s.begin():
        execution = s.scalar(select(Execution).where(Execution.dedup_key == dedup_key))
        assert execution is not None
        execution.status = status.value


def test_backfill_reprocess_failed_reruns_only_failures(db, queues, wfctl) -> None:
    make_schedule(db, utc(2026, 11, 1), cron="0 0 * * *", catchup="none")
    args = ("schedules", "backfill", "nightly", "--from", "2026-11-02T00:00:00Z", "--to", "2026-11-05T00:00:00Z")
    assert "4 fire times, 4 enqueued" in wfctl(*args).out
    bodies = sorted(sent_bodies(queues), key=lambda b: b["scheduled_for"])
    with session_factory(db)() as s, s.begin():
        for body in bodies[:3]:  # the 5th never ran
            insert_execution(s, parse_message(json.dumps(body)))
    _finish(db, bodies[0]["dedup_key"], ExecutionStatus.SUCCEEDED)
    _finish(db, bodies[1]["dedup_key"], ExecutionStatus.FAILED)
    _finish(db, bodies[2]["dedup_key"], ExecutionStatus.TIMED_OUT)
    # 11-05 never ran (no execution): missing sends it again under its scheduled key.
    result = wfctl(*args, "--reprocess", "failed")
    assert result.code == 0, result.err
    assert "4 fire times, 3 enqueued, 3 already ran, 2 re-run" in result.out
    again = sorted(sent_bodies(queues), key=lambda b: b["scheduled_for"])
    assert [(b["scheduled_for"][:10], b["dedup_key"].split(":")[0]) for b in again] == [
        ("2026-11-03", "reprocess"), ("2026-11-04", "reprocess"), ("2026-11-05", "schedule"),
    ]
    assert again[0]["dedup_key"].endswith(":2026-11-03T00:00:00Z:1") and again[0]["trigger"] == "backfill"
    # Repeating it before the spawner inserted the re-runs reuses the keys (no second re-run).
    wfctl(*args, "--reprocess", "failed")
    assert sorted(b["dedup_key"] for b in sent_bodies(queues)) == sorted(b["dedup_key"] for b in again)


def test_backfill_reprocess_all_reruns_finished_but_not_running(db, queues, wfctl) -> None:
    make_schedule(db, utc(2026, 11, 1), cron="0 0 * * *", catchup="none")
    args = ("schedules", "backfill", "nightly", "--from", "2026-11-02T00:00:00Z", "--to", "2026-11-03T00:00:00Z")
    wfctl(*args)
    bodies = sorted(sent_bodies(queues), key=lambda b: b["scheduled_for"])
    with session_factory(db)() as s, s.begin():
        for body in bodies:
            insert_execution(s, parse_message(json.dumps(body)))
    _finish(db, bodies[0]["dedup_key"], ExecutionStatus.SUCCEEDED)  # the other is still pending
    assert "0 enqueued, 2 already ran" in wfctl(*args).out
    result = wfctl(*args, "--reprocess", "all")
    assert "1 enqueued, 2 already ran, 1 re-run" in result.out
    [body] = sent_bodies(queues)
    assert body["scheduled_for"] == "2026-11-02T00:00:00Z" and body["dedup_key"].startswith("reprocess:")
    bad = wfctl(*args, "--reprocess", "some")
    assert bad.code == 2 and bad.err.startswith("error: reprocess")


def test_the_ledger_is_written_in_the_transaction_of_the_advance(db, queues, queue) -> None:
    """A tick killed between send and commit leaves no ledger entry; the re-send records one."""
    make_schedule(db, utc(2026, 11, 28, 8, 50), cron="*/5 * * * *")
    maker = session_factory(db)

    def crash() -> None:
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        tick(maker, queue, now=utc(2026, 11, 28, 9, 0, 10), after_send=crash)
    assert ledger(db) == []
    tick(maker, queue, now=utc(2026, 11, 28, 9, 0, 40))
    assert ledger(db) == [
        ("2026-11-28T08:55:00Z", "dropped", "superseded_latest"), ("2026-11-28T09:00:00Z", "sent", None),
    ]


def test_a_long_outage_records_its_latest_thousand_drops(db, queues, queue) -> None:
    make_schedule(db, utc(2026, 11, 27, 9, 0, 30), cron="* * * * *", catchup="none")
    summary = tick(session_factory(db), queue, now=utc(2026, 11, 28, 9, 0, 10))
    assert summary.fire_times_dropped == 1439 and summary.messages_sent == 1
    dropped = [e for e in ledger(db) if e[1] == "dropped"]
    assert len(dropped) == 1000
    assert dropped[-1] == ("2026-11-28T08:59:00Z", "dropped", "catchup_none")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"cron": "0 0 29 2 *", "start_at": "9900-03-01T00:00:00Z"}, [utc(9904, 2, 29), utc(9908, 2, 29)]),
        ({"cron": "0 0 1 1 *", "timezone": "Pacific/Kiritimati", "start_at": "9900-12-31T12:00:00Z"},
         [utc(9901, 12, 31, 10), utc(9902, 12, 31, 10)]),
        # Every 68 years: the third would be after the calendar's end, so there are two.
        ({"cron": None, "every": "596523h", "start_at": "9900-12-31T00:00:00Z"},
         [utc(9900, 12, 31), utc(9900, 12, 31) + timedelta(hours=596523)]),
    ],
)
def test_schedules_bounded_at_the_last_supported_year_still_plan(db, fields, expected) -> None:
    """The last year a bound may name leaves room for the searches past it: no overflow."""
    make_schedule(db, utc(2026, 11, 28), **fields)
    with session_factory(db)() as s:
        schedule = s.scalars(select(Schedule)).one()
        assert service.preview_fire_times(schedule, 3, after=utc(9900, 1, 1))[:2] == expected
        if fields.get("every"):
            assert len(service.preview_fire_times(schedule, 3, after=utc(9900, 1, 1))) == 2
        else:  # the longest preview runs into the calendar's end and stops there
            longest = service.preview_fire_times(schedule, 1000, after=utc(9900, 1, 1))
            assert len(longest) < 1000 and longest[-1].year >= 9996  # the last Feb 29 is in 9996


def test_times_given_with_fractions_of_a_second_are_whole_seconds(db) -> None:
    """Fire times are named to the second in messages, dedup keys and the ledger: an interval
    anchored at 09:00:00.5 fires at 09:00:00, 10:00:00…, instants its messages can name."""
    make_schedule(db, utc(2026, 11, 28), cron=None, every="1h", start_at="2026-11-29T09:00:00.500Z",
                  end_at="2026-11-30T09:00:00.999+00:00")
    with session_factory(db)() as s:
        schedule = s.scalars(select(Schedule)).one()
        assert (schedule.start_at, schedule.end_at) == (utc(2026, 11, 29, 9), utc(2026, 11, 30, 9))
        assert schedule.next_run_at == utc(2026, 11, 29, 9)
        assert service.preview_fire_times(schedule, 2, after=utc(2026, 11, 29, 8)) == [
            utc(2026, 11, 29, 9), utc(2026, 11, 29, 10)]


@pytest.mark.parametrize("order", ["newer first", "older first"])
def test_replace_keeps_exactly_the_later_run_whichever_message_is_decided_first(db, queues, queue, order) -> None:
    """Two runs of a `replace` schedule handled at the same moment (two workers, a catch-up
    batch, a retry): whatever order their decisions take, the later fire time runs and the
    earlier one is cancelled, never both."""
    from services.spawner.overlap import apply_overlap

    make_schedule(db, utc(2026, 11, 28, 8, 20, 30), cron="*/20 * * * *", catchup="all", overlap="replace")
    tick(session_factory(db), queue, now=utc(2026, 11, 28, 9, 5))
    bodies = sorted(sent_bodies(queues), key=lambda b: b["scheduled_for"])[-2:]  # 08:40 and 09:00
    maker = session_factory(db)
    ids = []
    for body in bodies:  # both inserted (pending) before either decision: the race
        with maker() as s, s.begin():
            ids.append(insert_execution(s, parse_message(json.dumps(body)))[0].id)
    decisions = {}
    for execution_id in (ids[::-1] if order == "newer first" else ids):
        with maker() as s, s.begin():
            decisions[execution_id] = apply_overlap(s, s.get_one(Execution, execution_id))
    older, newer = ids
    assert decisions[older].superseded and not decisions[newer].superseded
    with maker() as s:
        statuses = {e.id: e.status for e in s.scalars(select(Execution).where(Execution.id.in_(ids)))}
    assert statuses == {older: "cancelled", newer: "pending"}
    assert [(t[11:16], d, r) for t, d, r in ledger(db) if d == "dropped"] == [("08:40", "dropped", "overlap_replace")]
