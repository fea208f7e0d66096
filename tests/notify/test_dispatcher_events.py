"""`missed`, `late` and `long_running` from dispatcher ticks (injectable `now`), over real SQS."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from services.core.db.models import Execution, Notification, Schedule
from services.core.db.session import session_factory
from services.core.queue import Queue
from services.core.workflows import apply_workflow, parse_workflow
from services.dispatcher.schedules import ScheduleSpec, create_schedule
from services.dispatcher.tick import tick

WORKFLOW = """
name: hourly-sync
late_after: 2m
long_running_after: 5m
notify:
  - {on: [missed, late, long_running], channel: ops-hook}
steps:
  - {id: hello, type: log, with: {message: "hello"}}
"""


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def queue(queues) -> Queue:
    return Queue(queues.client, queues.queue_url)


def setup(db: str, created: datetime, workflow: str = WORKFLOW, **fields) -> str:
    with session_factory(db)() as session, session.begin():
        apply_workflow(session, parse_workflow(workflow))
        spec = ScheduleSpec(**{"name": "sync", "workflow": "hourly-sync", "cron": "* * * * *", **fields})
        return str(create_schedule(session, spec, now=created).id)


def notifications(db: str, event: str | None = None) -> list[Notification]:
    with session_factory(db)() as session:
        query = select(Notification).order_by(Notification.fire_time, Notification.id)
        if event:
            query = query.where(Notification.event == event)
        return list(session.scalars(query))


def test_one_missed_per_fire_time_dropped_after_downtime_delivered_once(db, queues, queue, receiver, add_channel, make_sender) -> None:
    from tests.notify.conftest import SECRET

    add_channel("ops-hook", {"type": "webhook", "url": receiver.url, "secret": SECRET})
    only_missed = WORKFLOW.replace("missed, late, long_running", "missed")
    setup(db, utc(2026, 11, 29, 9, 0), workflow=only_missed, timezone="Europe/Berlin")
    maker = session_factory(db)
    tick(maker, queue, now=utc(2026, 11, 29, 9, 1, 5))
    assert notifications(db) == []
    # The dispatcher is down from 09:01 to 09:10: 09:02-09:09 are missed; `latest` runs 09:10 only.
    sender = make_sender()
    summary = tick(maker, queue, now=utc(2026, 11, 29, 9, 10, 5), sender=sender)
    tick(maker, queue, now=utc(2026, 11, 29, 9, 10, 30), sender=sender)  # a second tick adds nothing
    missed = notifications(db, "missed")
    assert [n.fire_time for n in missed] == [utc(2026, 11, 29, 9, m) for m in range(2, 10)]
    assert summary.fire_times_dropped == 8 and summary.notifications_sent == 8
    assert all(n.status == "sent" for n in missed)
    bodies = [r.json() for r in receiver.requests]
    assert sorted(b["fire_time"] for b in bodies) == [f"2026-11-29T09:0{m}:00Z" for m in range(2, 10)]
    assert len({b["idempotency_key"] for b in bodies}) == 8
    first = min(bodies, key=lambda b: b["fire_time"])
    assert first["event"] == "missed" and first["schedule"]["name"] == "sync"
    assert "fire time 2026-11-29 10:02 CET" in first["text"]  # the schedule's zone
    assert "catchup latest" in first["reason"]


def test_fire_times_older_than_the_window_are_each_reported_missed(db, queues, queue) -> None:
    setup(db, utc(2026, 11, 29, 9, 0), catchup="all", catchup_window_seconds=300)
    maker = session_factory(db)
    tick(maker, queue, now=utc(2026, 11, 29, 9, 1, 5))
    tick(maker, queue, now=utc(2026, 11, 29, 9, 20, 5))  # down 19 minutes; the window is 5
    missed = notifications(db, "missed")
    assert [n.fire_time for n in missed] == [utc(2026, 11, 29, 9, m) for m in range(2, 16)]
    assert {n.details["reason"] for n in missed} == {"older than the catch-up window"}
    sent = sorted(m["Body"] for m in queues.drain())
    assert len(sent) == 1 + 5  # 09:01, then 09:16-09:20 (inside the window)


def test_late_after_2m_gives_one_late_per_fire_time_without_success(db, queues, queue) -> None:
    schedule_id = setup(db, utc(2026, 11, 29, 8, 59), cron="0 * * * *")
    maker = session_factory(db)
    tick(maker, queue, now=utc(2026, 11, 29, 9, 0, 5))  # sends 09:00; its deadline is 09:02
    tick(maker, queue, now=utc(2026, 11, 29, 9, 1, 5))
    assert notifications(db, "late") == []
    # A run started (the spawner picked the message up) but has not succeeded.
    with maker() as session, session.begin():
        session.add(Execution(
            workflow_id=session.get(Schedule, schedule_id).workflow_id, schedule_id=schedule_id, trigger="schedule",
            scheduled_for=utc(2026, 11, 29, 9), dedup_key="x", attempt=1, status="running", input={},
            started_at=utc(2026, 11, 29, 9, 0, 10),
        ))
    tick(maker, queue, now=utc(2026, 11, 29, 9, 2, 5))
    tick(maker, queue, now=utc(2026, 11, 29, 9, 3, 5))
    [late] = notifications(db, "late")
    assert late.fire_time == utc(2026, 11, 29, 9) and late.details["status"] == "running"
    assert late.idempotency_key == f"late:{schedule_id}:2026-11-29T09:00:00Z:ops-hook"


def test_no_late_when_the_run_succeeded_in_time(db, queues, queue) -> None:
    schedule_id = setup(db, utc(2026, 11, 29, 8, 59), cron="0 * * * *")
    maker = session_factory(db)
    tick(maker, queue, now=utc(2026, 11, 29, 9, 0, 5))
    with maker() as session, session.begin():
        session.add(Execution(
            workflow_id=session.get(Schedule, schedule_id).workflow_id, schedule_id=schedule_id, trigger="schedule",
            scheduled_for=utc(2026, 11, 29, 9), dedup_key="y", attempt=1, status="succeeded", input={},
        ))
    tick(maker, queue, now=utc(2026, 11, 29, 9, 5, 5))
    assert notifications(db, "late") == []


def test_late_when_nothing_ran_at_all(db, queues, queue) -> None:
    setup(db, utc(2026, 11, 29, 8, 59), cron="0 * * * *")
    maker = session_factory(db)
    tick(maker, queue, now=utc(2026, 11, 29, 9, 0, 5))
    tick(maker, queue, now=utc(2026, 11, 29, 9, 2, 0))  # exactly at the deadline
    [late] = notifications(db, "late")
    assert late.details["status"] == "not started" and late.execution_id is None


def test_long_running_once_per_execution_and_schedule_rules_add_to_the_workflows(db, queues, queue) -> None:
    workflow = WORKFLOW.replace("long_running_after: 5m\n", "").replace("missed, late, long_running", "missed")
    schedule_id = setup(
        db, utc(2026, 11, 29, 8, 59), workflow=workflow, cron="0 * * * *",
        notify={"notify": [{"on": ["long_running"], "channel": "pager"}], "long_running_after": "5m"},
    )
    maker = session_factory(db)
    with maker() as session, session.begin():
        session.add(Execution(
            workflow_id=session.get(Schedule, schedule_id).workflow_id, schedule_id=schedule_id, trigger="manual",
            dedup_key="z", attempt=1, status="running", input={}, started_at=utc(2026, 11, 29, 9, 0),
        ))
    tick(maker, queue, now=utc(2026, 11, 29, 9, 4, 59))
    assert notifications(db, "long_running") == []
    tick(maker, queue, now=utc(2026, 11, 29, 9, 5, 0))
    tick(maker, queue, now=utc(2026, 11, 29, 9, 6, 0))
    [long_running] = notifications(db, "long_running")
    assert long_running.channel == "pager" and "running longer than 5m" in long_running.details["threshold"]


def add_run(db: str, schedule_id: str, **fields) -> None:
    with session_factory(db)() as session, session.begin():
        session.add(Execution(
            workflow_id=session.get(Schedule, schedule_id).workflow_id, schedule_id=schedule_id, input={},
            **{"trigger": "schedule", "attempt": 1, **fields},
        ))


def test_late_when_the_run_succeeded_only_after_the_deadline(db, queues, queue) -> None:
    """Not succeeded *within* the deadline is late, even when the success came before the check
    (the dispatcher was down from 09:01 to 09:56)."""
    schedule_id = setup(db, utc(2026, 11, 29, 8, 59), cron="0 * * * *")
    maker = session_factory(db)
    tick(maker, queue, now=utc(2026, 11, 29, 9, 0, 5))  # deadline 09:02
    add_run(db, schedule_id, scheduled_for=utc(2026, 11, 29, 9), dedup_key="after", status="succeeded",
            started_at=utc(2026, 11, 29, 9, 0, 10), finished_at=utc(2026, 11, 29, 9, 55))
    tick(maker, queue, now=utc(2026, 11, 29, 9, 56, 5), batch_size=10)
    [late] = notifications(db, "late")
    assert late.fire_time == utc(2026, 11, 29, 9) and late.details["status"] == "succeeded"


def test_one_schedules_unreadable_rules_do_not_stop_the_others_late_checks(db, queues, queue) -> None:
    good = setup(db, utc(2026, 11, 29, 8, 59), cron="0 * * * *")
    maker = session_factory(db)
    with maker() as session, session.begin():
        spec = ScheduleSpec(name="broken", workflow="hourly-sync", cron="0 * * * *",
                            notify={"notify": [{"on": ["late"], "channel": "pager"}]})
        broken = str(create_schedule(session, spec, now=utc(2026, 11, 29, 8, 59)).id)
    tick(maker, queue, now=utc(2026, 11, 29, 9, 0, 5))  # both deadlines: 09:02
    with maker() as session, session.begin():  # written around validation: rules no reader accepts
        session.execute(Schedule.__table__.update().where(Schedule.name == "broken")
                        .values(notify={"notify": [{"on": ["late"], "channel": 7}]}))
    tick(maker, queue, now=utc(2026, 11, 29, 9, 3, 5))
    assert [(str(n.schedule_id), n.fire_time) for n in notifications(db, "late")] == [(good, utc(2026, 11, 29, 9))]
    from services.core.db.models import LateDeadline

    with maker() as session:
        outcomes = dict(session.execute(select(LateDeadline.schedule_id, LateDeadline.outcome)).all())
    assert {str(k): v for k, v in outcomes.items()} == {good: "late", broken: "error"}


def test_long_running_is_found_among_more_running_runs_than_one_page(db, queues, queue, monkeypatch) -> None:
    """Every running run is looked at, oldest first, a page at a time: 20 older runs of a
    workflow allowed an hour (overdue too) must not hide a younger run of one allowed five minutes."""
    from services.notify import events

    monkeypatch.setattr(events, "DETECT_BATCH", 7)  # the same paging, on a smaller fleet
    schedule_id = setup(db, utc(2026, 11, 29, 8, 59), cron="0 * * * *")  # long_running_after: 5m
    patient = WORKFLOW.replace("name: hourly-sync", "name: patient").replace("long_running_after: 5m",
                                                                             "long_running_after: 1h")
    with session_factory(db)() as session, session.begin():
        workflow, _ = apply_workflow(session, parse_workflow(patient))
        for n in range(20):
            session.add(Execution(workflow_id=workflow.id, trigger="manual", dedup_key=f"patient-{n}", attempt=1,
                                  status="running", input={}, started_at=utc(2026, 11, 29, 8, 30)))
    add_run(db, schedule_id, trigger="manual", dedup_key="overdue", status="running",
            started_at=utc(2026, 11, 29, 9, 50))
    tick(session_factory(db), queue, now=utc(2026, 11, 29, 10, 0, 5))
    found = notifications(db, "long_running")
    assert len(found) == 21
    [mine] = [n for n in found if str(n.schedule_id) == schedule_id]
    assert "running longer than 5m" in mine.details["threshold"]
    tick(session_factory(db), queue, now=utc(2026, 11, 29, 10, 1, 5))
    assert len(notifications(db, "long_running")) == 21  # once per run
