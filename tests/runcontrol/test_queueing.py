"""Runs held back as `queued` by buffering overlap and pools, started when a slot frees (the
spawner in a thread, Jobs in kmock; a run "finishes" when its status is written, as a runner
would, which NOTIFYs the spawner)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.core.db.models import Execution, ExecutionStatus, Workflow
from services.core.db.session import session_factory
from services.core.executions import finish_execution, transition
from services.spawner.jobs import job_name
from tests.spawner.conftest import (
    executions,
    make_schedule,
    manual_message,
    queue_empty,
    schedule_message,
    send,
    wait_for,
)


def fire(minute: int) -> datetime:
    return datetime(2030, 1, 1, 0, minute, tzinfo=UTC)


def by_key(db: str) -> dict[str, Execution]:
    return {e.dedup_key: e for e in executions(db)}


def finish(db: str, execution_id: uuid.UUID) -> None:
    """What the runner does: claim the run, then record its result."""
    with session_factory(db)() as session:
        transition(session, execution_id, [ExecutionStatus.STARTING], ExecutionStatus.RUNNING)
        assert finish_execution(session, execution_id, ExecutionStatus.SUCCEEDED)
        session.commit()


def settled(db, queues, spawner, count: int) -> bool:
    return len(executions(db)) == count and queue_empty(queues) and spawner.parts.spawner.idle()


def test_buffer_one_keeps_one_run_waiting_and_skips_the_rest_with_the_reason(
    db, queues, emulator, workflow, start_spawner, wfctl
):
    schedule = make_schedule(db, workflow, overlap="buffer_one")
    spawner = start_spawner(concurrency=1)
    messages = [schedule_message(schedule, fire(minute)) for minute in range(4)]
    send(queues, messages[0].to_json())
    assert wait_for(lambda: settled(db, queues, spawner, 1) and len(emulator.jobs()) == 1)
    slow = by_key(db)[messages[0].dedup_key]
    for count, message in enumerate(messages[1:], start=2):  # three fire times while the slow run runs
        send(queues, message.to_json())
        assert wait_for(lambda count=count: settled(db, queues, spawner, count))
    rows = by_key(db)
    waiting = rows[messages[1].dedup_key]
    assert waiting.status == ExecutionStatus.QUEUED
    assert "overlap buffer_one" in waiting.queued_reason
    for message in messages[2:]:
        dropped = rows[message.dedup_key]
        assert dropped.status == ExecutionStatus.SKIPPED
        assert dropped.error == (
            f"skipped: overlap buffer_one: execution {waiting.id} of the same schedule is already waiting"
        )
    assert list(emulator.jobs()) == [job_name(slow.id)]
    listed = wfctl("executions", "list", "--status", "queued", "--output", "json").json()
    assert [(r["id"], r["reason"]) for r in listed] == [(str(waiting.id), waiting.queued_reason)]

    finish(db, slow.id)  # a slot frees: the waiting run starts, without any polling
    assert wait_for(lambda: job_name(waiting.id) in emulator.jobs(), timeout=5)
    assert by_key(db)[messages[1].dedup_key].status == ExecutionStatus.STARTING
    spawner.stop()


def test_buffer_all_runs_every_fire_time_one_at_a_time_in_order(db, queues, emulator, workflow, start_spawner):
    schedule = make_schedule(db, workflow, overlap="buffer_all")
    spawner = start_spawner(concurrency=1)
    messages = [schedule_message(schedule, fire(minute)) for minute in range(4)]
    for count, message in enumerate(messages, start=1):
        send(queues, message.to_json())
        assert wait_for(lambda count=count: settled(db, queues, spawner, count))
    order = [by_key(db)[m.dedup_key].id for m in messages]
    for index, current in enumerate(order):
        rows = {e.id: e.status for e in executions(db)}
        assert rows[current] == ExecutionStatus.STARTING
        assert [rows[i] for i in order[index + 1 :]] == [ExecutionStatus.QUEUED] * (len(order) - index - 1)
        assert list(emulator.jobs()) == [job_name(i) for i in order[: index + 1]]  # one new Job at a time
        finish(db, current)
        if index + 1 < len(order):
            assert wait_for(lambda i=order[index + 1]: job_name(i) in emulator.jobs(), timeout=5)
    assert {e.status for e in executions(db)} == {ExecutionStatus.SUCCEEDED}
    spawner.stop()


def test_a_pool_is_shared_by_workflows_and_shown_by_pools_list(db, queues, emulator, start_spawner, wfctl):
    assert wfctl("pools", "set", "api", "--slots", "1").code == 0
    workflows = []
    with session_factory(db)() as session:
        for name in ("wf-a", "wf-b"):
            definition = {"name": name, "pool": "api", "steps": [{"id": "s", "type": "log", "with": {"message": "x"}}]}
            workflow = Workflow(name=name, definition=definition, timeout_seconds=60)
            session.add(workflow)
            workflows.append(workflow)
        session.commit()
    spawner = start_spawner(concurrency=1)
    first, second = manual_message(workflows[0]), manual_message(workflows[1])
    send(queues, first.to_json())
    assert wait_for(lambda: settled(db, queues, spawner, 1) and len(emulator.jobs()) == 1)
    send(queues, second.to_json())
    assert wait_for(lambda: settled(db, queues, spawner, 2))
    waiting = by_key(db)[second.dedup_key]
    assert (waiting.status, waiting.queued_reason, waiting.pool) == ("queued", "pool api: all 1 slot(s) in use", "api")
    [pool] = wfctl("pools", "list", "--output", "json").json()
    assert (pool["name"], pool["slots"], pool["in_use"], pool["queued"]) == ("api", 1, 1, 1)

    finish(db, by_key(db)[first.dedup_key].id)
    assert wait_for(lambda: job_name(waiting.id) in emulator.jobs(), timeout=5)
    metrics = spawner.parts.metrics
    assert wait_for(lambda: metrics.admitted._value.get() == 1)
    assert metrics.queued._value.get() == 1
    spawner.stop()


def test_a_restarted_spawner_starts_runs_that_were_left_queued(db, queues, emulator, start_spawner, wfctl):
    with session_factory(db)() as session:
        definition = {"name": "one", "concurrency": {"limit": 1}, "steps": [{"id": "s", "type": "log", "with": {}}]}
        workflow = Workflow(name="one", definition=definition, timeout_seconds=60)
        session.add(workflow)
        session.commit()
    spawner = start_spawner(concurrency=1)
    messages = [manual_message(workflow) for _ in range(2)]
    for count, message in enumerate(messages, start=1):
        send(queues, message.to_json())
        assert wait_for(lambda count=count: settled(db, queues, spawner, count))
    spawner.stop()  # no spawner while the slot frees: the notification is heard by nobody
    running, waiting = (by_key(db)[m.dedup_key] for m in messages)
    assert waiting.status == ExecutionStatus.QUEUED
    assert waiting.queued_reason == "concurrency limit 1 of workflow one reached"
    finish(db, running.id)
    restarted = start_spawner(concurrency=1)
    assert wait_for(lambda: job_name(waiting.id) in emulator.jobs(), timeout=5)
    restarted.stop()
