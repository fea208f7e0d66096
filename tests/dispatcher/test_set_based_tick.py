"""The set-based tick at fleet shape: many schedules over many batches, groups planned once, bulk writes."""

from __future__ import annotations

import gc
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from services.core.db.models import FireTime, LateDeadline, Schedule
from services.core.db.session import session_factory
from services.core.messages import RunMessage, parse_message, scheduled_run_body, utc_iso
from services.core.queue import OutgoingMessage
from services.core.workflows import apply_workflow, parse_workflow
from services.dispatcher import tick as tick_module
from services.dispatcher.schedules import ScheduleSpec, create_schedule
from services.dispatcher.tick import tick

NOTIFYING = """
name: watched
late_after: 2m
notify:
  - {on: [late], channel: ops}
steps:
  - {id: hello, type: log, with: {message: "hello"}}
"""
QUIET = """
name: quiet
steps:
  - {id: hello, type: log, with: {message: "hello"}}
"""


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class RecordingQueue:
    """Accepts every message and keeps the bodies (the tick's sending side is tested over SQS elsewhere)."""

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> int:
        self.sent.extend(messages)
        return len(messages)


@pytest.mark.parametrize("payload", [{}, {"b": [1, {"z": "é", "a": None}], "a": "x\"y"}])
def test_scheduled_body_is_byte_for_byte_the_message_contract(payload) -> None:
    schedule_id, workflow_id = uuid.uuid4(), uuid.uuid4()
    fire = utc(2026, 11, 30, 10, 0)
    message = RunMessage(
        trigger="schedule", dedup_key=f"schedule:{schedule_id}:{utc_iso(fire)}", workflow_id=workflow_id,
        schedule_id=schedule_id, scheduled_for=fire, input=payload,
    )
    body = scheduled_run_body(
        message.dedup_key, str(schedule_id), str(workflow_id), utc_iso(fire),
        json.dumps(payload, separators=(",", ":"), sort_keys=True),
    )
    assert body == message.to_json()
    assert parse_message(body) == message


def make_fleet(db: str, created: datetime) -> dict[str, str]:
    """Schedules over several zones, expressions and kinds; returns {schedule name: id}."""
    ids: dict[str, str] = {}
    with session_factory(db)() as session, session.begin():
        apply_workflow(session, parse_workflow(QUIET))
        apply_workflow(session, parse_workflow(NOTIFYING))
        for index in range(60):
            zone = ["UTC", "Europe/Berlin", "Asia/Kolkata", "America/New_York"][index % 4]
            fields: dict = {"cron": ["0 * * * *", "*/30 * * * *", "0,15 * * * *"][index % 3]}
            if index % 10 == 9:
                fields = {"every": "1h"}
            spec = ScheduleSpec(
                name=f"s{index}", workflow="watched" if index < 5 else "quiet", timezone=zone,
                input={"n": index} if index % 2 else {}, **fields,
            )
            ids[f"s{index}"] = str(create_schedule(session, spec, now=created).id)
    return ids


def test_many_batches_send_each_due_schedule_once_with_its_ledger_row_and_advance(db, monkeypatch) -> None:
    ids = make_fleet(db, utc(2026, 11, 30, 9, 59, 30))
    planned: list[tuple] = []
    original = tick_module.plan_group
    monkeypatch.setattr(tick_module, "plan_group", lambda key, now: planned.append(key) or original(key, now))
    queue = RecordingQueue()
    now = utc(2026, 11, 30, 10, 0, 5)
    with session_factory(db)() as session:
        first = {str(s.id): s.next_run_at for s in session.scalars(select(Schedule))}
    # Due at 10:00 UTC: the cron ones firing on the UTC hour (not `0 * * * *` in Kolkata, +5:30);
    # `every: 1h` ones created at 09:59:30 first fire at 10:59:30.
    due = {name for name, schedule_id in ids.items() if first[schedule_id] == utc(2026, 11, 30, 10, 0)}
    assert 30 < len(due) < len(ids) and all(first[ids[name]] > now for name in set(ids) - due)
    summary = tick(session_factory(db), queue, now=now, batch_size=7)  # several batches

    assert summary.schedules_claimed == len(due) == summary.messages_sent
    bodies = [parse_message(m.body) for m in queue.sent]
    assert sorted(str(b.schedule_id) for b in bodies) == sorted(ids[name] for name in due)
    assert {b.scheduled_for for b in bodies} == {utc(2026, 11, 30, 10, 0)}
    by_id = {str(b.schedule_id): b for b in bodies}
    assert by_id[ids["s1"]].input == {"n": 1} and by_id[ids["s4"]].input == {}
    # Each distinct (timing, next_run_at, catch-up) group is planned once, not once per schedule.
    assert len(planned) == len(set(planned)) < len(due)

    with session_factory(db)() as session:
        ledger = session.execute(select(FireTime.schedule_id, FireTime.decision, FireTime.dedup_key)).all()
        assert sorted((str(s), d) for s, d, _ in ledger) == sorted((ids[name], "sent") for name in due)
        assert {k for *_, k in ledger} == {b.dedup_key for b in bodies}
        schedules = {str(s.id): s for s in session.scalars(select(Schedule))}
        for name in due:
            schedule = schedules[ids[name]]
            assert schedule.next_run_at > now and schedule.last_dispatched_at == now
        # Late deadlines for the notifying workflow's sent fire times, and only for those.
        deadlines = session.execute(select(LateDeadline.schedule_id, LateDeadline.due_at)).all()
        watched = {ids[f"s{i}"] for i in range(5)} & {ids[name] for name in due}
        assert {str(s) for s, _ in deadlines} == watched
        assert {d for _, d in deadlines} == {utc(2026, 11, 30, 10, 2)}

    again = tick(session_factory(db), queue, now=utc(2026, 11, 30, 10, 0, 40), batch_size=7)
    assert again.messages_sent == 0
    with session_factory(db)() as session:
        assert session.scalar(select(func.count()).select_from(FireTime)) == len(due)


class CommitFailed(Exception):
    pass


def fail_commit() -> None:
    raise CommitFailed


def test_a_failed_commit_stops_the_tick_before_another_batch_is_sent(db) -> None:
    ids = make_fleet(db, utc(2026, 11, 30, 9, 59, 30))
    queue = RecordingQueue()
    with pytest.raises(CommitFailed):
        tick(session_factory(db), queue, now=utc(2026, 11, 30, 10, 0, 5), batch_size=1, after_send=fail_commit)
    # Only the first batch went out; the next batch (maybe the same rows, released by the
    # rollback) was claimed while it committed but is never sent.
    assert len(queue.sent) == 1
    with session_factory(db)() as session:
        assert session.scalar(select(func.count()).select_from(FireTime)) == 0
        advanced = session.scalar(select(func.count()).select_from(Schedule).where(Schedule.last_dispatched_at.is_not(None)))
        assert advanced == 0 and len(ids) == 60


def test_the_tick_pauses_the_garbage_collector_only_while_it_runs(db) -> None:
    make_fleet(db, utc(2026, 11, 30, 9, 59, 30))
    seen: list[bool] = []

    class ObservingQueue(RecordingQueue):
        def send_batch(self, messages: Sequence[OutgoingMessage]) -> int:
            seen.append(gc.isenabled())
            return super().send_batch(messages)

    assert gc.isenabled()
    tick(session_factory(db), ObservingQueue(), now=utc(2026, 11, 30, 10, 0, 5), batch_size=10)
    assert seen and not any(seen)  # paused while batches are planned and sent
    assert gc.isenabled()  # and running again after, as the process found it
    with pytest.raises(CommitFailed):
        tick(session_factory(db), RecordingQueue(), now=utc(2026, 11, 30, 11, 0, 5), after_send=fail_commit)
    assert gc.isenabled()  # also when the tick fails
    gc.disable()
    try:
        tick(session_factory(db), RecordingQueue(), now=utc(2026, 11, 30, 12, 0, 5))
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


def test_a_schedule_that_cannot_be_planned_is_skipped_and_logged_not_fatal(db, caplog) -> None:
    """A row the tick cannot plan (here a time zone no tzdata knows, written around validation)
    must not stop the fleet's dispatch: it is left as it is, logged, and tried again next tick."""
    with session_factory(db)() as session, session.begin():
        apply_workflow(session, parse_workflow(QUIET))
        for name in ("good", "broken"):
            create_schedule(session, ScheduleSpec(name=name, workflow="quiet", cron="0 * * * *"),
                            now=utc(2026, 11, 30, 9, 30))
        session.execute(Schedule.__table__.update().where(Schedule.name == "broken").values(timezone="Mars/Olympus"))
    queue = RecordingQueue()
    summary = tick(session_factory(db), queue, now=utc(2026, 11, 30, 10, 0, 5))
    assert (summary.schedules_claimed, summary.messages_sent, summary.schedules_held) == (2, 1, 1)
    assert "1 that cannot be planned skipped" in summary.line()
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "schedule_unplannable"]
    assert "Mars/Olympus" in record.error
    with session_factory(db)() as session:
        schedules = {s.name: s for s in session.scalars(select(Schedule))}
        assert str(record.schedule_id) == str(schedules["broken"].id)
        assert schedules["broken"].next_run_at == utc(2026, 11, 30, 10, 0)  # held, not advanced
        assert schedules["good"].next_run_at == utc(2026, 11, 30, 11, 0)
    later = tick(session_factory(db), queue, now=utc(2026, 11, 30, 11, 0, 5))
    assert (later.messages_sent, later.schedules_held) == (1, 1)
    assert [parse_message(m.body).schedule_id for m in queue.sent] == [schedules["good"].id] * 2
