"""Which queued runs an admission pass looks at, and in what order (services.spawner.admission)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from services.core.db.models import Execution, ExecutionStatus, Workflow
from services.core.db.session import session_factory
from services.dispatcher.schedules import ScheduleSpec, create_schedule
from services.spawner import admission

BASE = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def make_workflow(session, name: str, limit: int | None = None) -> uuid.UUID:
    definition = {"name": name, "steps": [{"id": "a", "type": "log", "with": {"message": "hi"}}]}
    if limit is not None:
        definition["concurrency"] = {"limit": limit}
    workflow = Workflow(name=name, definition=definition, timeout_seconds=60, version=1)
    session.add(workflow)
    session.flush()
    return workflow.id


def add_run(session, workflow_id: uuid.UUID, status: str, arrived: datetime, **fields) -> uuid.UUID:
    execution = Execution(**{"trigger": "manual", "dedup_key": f"manual:{uuid.uuid4()}", **fields},
                          workflow_id=workflow_id, attempt=1, status=status, input={}, created_at=arrived)
    session.add(execution)
    session.flush()
    return execution.id


def statuses(db: str) -> dict[uuid.UUID, str]:
    with session_factory(db)() as session:
        return dict(session.execute(select(Execution.id, Execution.status)).all())


def test_a_long_backlog_of_one_workflow_does_not_hide_another_workflows_runs(db, monkeypatch) -> None:
    monkeypatch.setattr(admission, "MAX_PER_QUEUE", 3)
    monkeypatch.setattr(admission, "MAX_CANDIDATES", 5)  # the same rule as 100 and 5,000, on a small queue
    with session_factory(db)() as session, session.begin():
        busy = make_workflow(session, "busy", limit=1)
        idle = make_workflow(session, "idle", limit=5)
        add_run(session, busy, "running", BASE)
        for minute in range(10):  # older than idle's run: all of them waiting for busy's one slot
            add_run(session, busy, "queued", BASE + timedelta(minutes=minute))
        waiting = add_run(session, idle, "queued", BASE + timedelta(minutes=30))
    with session_factory(db)() as session, session.begin():
        assert admission.promote(session) == [waiting]
    assert statuses(db)[waiting] == ExecutionStatus.STARTING


def test_buffer_all_admits_a_schedules_runs_by_fire_time_whatever_order_they_arrived_in(db) -> None:
    with session_factory(db)() as session, session.begin():
        workflow_id = make_workflow(session, "sync")
        schedule = create_schedule(session, ScheduleSpec(name="sync", workflow="sync", cron="* * * * *",
                                                         overlap="buffer_all"), now=BASE)
        # A catch-up batch delivered out of order by concurrent workers: 10:00, 10:03, 10:01.
        runs = {
            minute: add_run(session, workflow_id, "queued", BASE + timedelta(seconds=10 + n), trigger="schedule",
                            schedule_id=schedule.id, scheduled_for=BASE + timedelta(minutes=minute))
            for n, minute in enumerate((0, 3, 1))
        }
    order = []
    for _ in range(3):
        with session_factory(db)() as session, session.begin():
            [admitted] = admission.promote(session)  # one at a time: the schedule's previous run is done
            order.append(admitted)
            session.execute(
                Execution.__table__.update().where(Execution.id == admitted).values(status="succeeded")
            )
    assert order == [runs[0], runs[1], runs[3]]
