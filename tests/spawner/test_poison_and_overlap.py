"""Poison messages go to the DLQ with their reason; overlap `skip` and `replace`."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from services.core.db.models import ExecutionStatus
from services.core.db.session import session_factory
from services.core.executions import insert_execution, transition
from services.spawner.jobs import job_name
from tests.spawner.conftest import (
    JOBS,
    dlq_messages,
    executions,
    make_schedule,
    manual_message,
    queue_empty,
    schedule_message,
    send,
    wait_for,
)

GOOD = {"version": 1, "trigger": "manual", "dedup_key": "manual:x", "workflow_id": None, "input": {}}


def poison(**changes: object) -> str:
    return json.dumps({**GOOD, "workflow_id": str(uuid.uuid4()), **changes})


POISON = {
    "not JSON": ("{oops", "body is not JSON"),
    "not an object": ("[1, 2]", "body is not a JSON object"),
    "wrong version": (poison(version=2), "unsupported version 2"),
    "unknown trigger": (poison(trigger="cron"), "unknown trigger 'cron'"),
    "bad workflow UUID": (poison(workflow_id="nope"), "workflow_id is not a UUID"),
    "bad schedule UUID": (poison(trigger="schedule", schedule_id="x"), "schedule_id is not a UUID"),
    "input not an object": (poison(input=[1]), "input must be a JSON object"),
    "missing workflow": (poison(), "does not exist"),
}


def test_poison_messages_are_dead_lettered_and_the_loop_lives(db, queues, emulator, workflow, start_spawner):
    bodies = [body for body, _ in POISON.values()]
    send(queues, *bodies)
    spawner = start_spawner()
    assert wait_for(lambda: queue_empty(queues) and spawner.parts.spawner.idle())
    good = manual_message(workflow)
    send(queues, good.to_json())  # the loop is still alive and still spawning
    assert wait_for(lambda: len(emulator.jobs()) == 1 and queue_empty(queues) and spawner.parts.spawner.idle())
    spawner.stop()
    parked = {m["Body"]: m["MessageAttributes"]["reason"]["StringValue"] for m in dlq_messages(queues)}
    assert set(parked) == set(bodies)
    for name, (body, reason) in POISON.items():
        assert reason in parked[body], name
    assert [e.dedup_key for e in executions(db)] == [good.dedup_key]
    counted = spawner.parts.metrics.dead_lettered
    assert counted.labels(reason="malformed")._value.get() == 7
    assert counted.labels(reason="unknown_reference")._value.get() == 1


def _active_run(db, schedule, status: ExecutionStatus, minute: int):
    message = schedule_message(schedule, datetime(2030, 1, 1, 0, minute, tzinfo=UTC))
    with session_factory(db)() as session:
        execution, _ = insert_execution(session, message)
        transition(session, execution.id, ["pending"], status, job_name=job_name(execution.id))
        session.commit()
    return execution


def test_overlap_skip(db, queues, emulator, workflow, start_spawner):
    schedule = make_schedule(db, workflow, overlap="skip")
    previous = _active_run(db, schedule, ExecutionStatus.RUNNING, minute=0)
    message = schedule_message(schedule, datetime(2030, 1, 1, 0, 1, tzinfo=UTC))
    send(queues, message.to_json())
    spawner = start_spawner()
    assert wait_for(lambda: queue_empty(queues) and spawner.parts.spawner.idle())
    spawner.stop()
    by_key = {e.dedup_key: e for e in executions(db)}
    skipped = by_key[message.dedup_key]
    assert skipped.status == ExecutionStatus.SKIPPED
    assert str(previous.id) in skipped.error
    assert by_key[previous.dedup_key].status == ExecutionStatus.RUNNING
    assert emulator.jobs() == {}


def test_overlap_skip_runs_when_nothing_is_active(db, queues, emulator, workflow, start_spawner):
    schedule = make_schedule(db, workflow, overlap="skip")
    send(queues, schedule_message(schedule, datetime(2030, 1, 1, 0, 1, tzinfo=UTC)).to_json())
    spawner = start_spawner()
    assert wait_for(lambda: len(emulator.jobs()) == 1 and queue_empty(queues) and spawner.parts.spawner.idle())
    spawner.stop()
    assert executions(db)[0].status == ExecutionStatus.STARTING


def test_overlap_skip_two_at_once_runs_exactly_one(db, queues, emulator, workflow, start_spawner):
    schedule = make_schedule(db, workflow, overlap="skip")
    send(
        queues,
        schedule_message(schedule, datetime(2030, 1, 1, 0, 1, tzinfo=UTC)).to_json(),
        schedule_message(schedule, datetime(2030, 1, 1, 0, 2, tzinfo=UTC)).to_json(),
    )
    spawner = start_spawner(concurrency=8)
    assert wait_for(lambda: queue_empty(queues) and spawner.parts.spawner.idle() and len(executions(db)) == 2)
    spawner.stop()
    assert sorted(e.status for e in executions(db)) == [ExecutionStatus.SKIPPED, ExecutionStatus.STARTING]
    assert len(emulator.jobs()) == 1


def test_overlap_replace(db, queues, emulator, workflow, start_spawner):
    schedule = make_schedule(db, workflow, overlap="replace")
    previous = _active_run(db, schedule, ExecutionStatus.RUNNING, minute=0)
    old_job = job_name(previous.id)
    emulator.put(
        JOBS, old_job, {"metadata": {"name": old_job, "namespace": "runs", "labels": {"app": "workflow-runner"}}}
    )
    message = schedule_message(schedule, datetime(2030, 1, 1, 0, 1, tzinfo=UTC))
    send(queues, message.to_json())
    spawner = start_spawner()
    assert wait_for(
        lambda: (
            queue_empty(queues)
            and spawner.parts.spawner.idle()
            and len(emulator.jobs()) == 1
            and old_job not in emulator.jobs()
        )
    )
    spawner.stop()
    by_key = {e.dedup_key: e for e in executions(db)}
    replaced = by_key[previous.dedup_key]
    assert replaced.status == ExecutionStatus.CANCELLED
    assert replaced.finished_at is not None
    new = by_key[message.dedup_key]
    assert new.status == ExecutionStatus.STARTING
    assert str(new.id) in replaced.error
    assert list(emulator.jobs()) == [job_name(new.id)]


@pytest.mark.parametrize("overlap", ["allow"])
def test_overlap_allow_runs_alongside(db, queues, emulator, workflow, start_spawner, overlap):
    schedule = make_schedule(db, workflow, overlap=overlap)
    _active_run(db, schedule, ExecutionStatus.RUNNING, minute=0)
    send(queues, schedule_message(schedule, datetime(2030, 1, 1, 0, 1, tzinfo=UTC)).to_json())
    spawner = start_spawner()
    assert wait_for(lambda: len(emulator.jobs()) == 1 and queue_empty(queues) and spawner.parts.spawner.idle())
    spawner.stop()
    assert sorted(e.status for e in executions(db)) == [ExecutionStatus.RUNNING, ExecutionStatus.STARTING]


def test_a_redelivered_message_of_a_deleted_schedule_finishes_its_existing_run(
    db, queues, emulator, workflow, start_spawner
):
    """The first delivery recorded the run and died; the schedule was deleted before the message
    came back. The run exists, so it is launched as any other, not dead-lettered and left pending."""
    from datetime import UTC, datetime

    from services.core.executions import insert_execution
    from services.dispatcher.schedules import delete_schedule
    from tests.spawner.conftest import make_schedule, schedule_message

    schedule = make_schedule(db, workflow)
    message = schedule_message(schedule, datetime(2026, 11, 30, 10, 0, tzinfo=UTC))
    with session_factory(db)() as session, session.begin():
        insert_execution(session, message)  # the first delivery, which then died
        delete_schedule(session, schedule.name)
    send(queues, message.to_json())
    spawner = start_spawner()
    assert wait_for(lambda: len(emulator.jobs()) == 1 and queue_empty(queues) and spawner.parts.spawner.idle())
    spawner.stop()
    assert dlq_messages(queues) == []
    [execution] = executions(db)
    assert execution.dedup_key == message.dedup_key and execution.status == "starting"


def test_a_message_of_a_deleted_schedule_without_a_run_is_dead_lettered(db, queues, emulator, workflow, start_spawner):
    from datetime import UTC, datetime

    from services.dispatcher.schedules import delete_schedule
    from tests.spawner.conftest import make_schedule, schedule_message

    schedule = make_schedule(db, workflow)
    message = schedule_message(schedule, datetime(2026, 11, 30, 10, 0, tzinfo=UTC))
    with session_factory(db)() as session, session.begin():
        delete_schedule(session, schedule.name)
    send(queues, message.to_json())
    spawner = start_spawner()
    assert wait_for(lambda: queue_empty(queues) and spawner.parts.spawner.idle())
    spawner.stop()
    [parked] = dlq_messages(queues)
    assert "does not exist" in parked["MessageAttributes"]["reason"]["StringValue"]
    assert executions(db) == [] and emulator.jobs() == {}
