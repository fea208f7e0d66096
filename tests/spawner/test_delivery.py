"""Exactly one execution and at most one Job per message, whatever SQS and the process do."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from services.core.db.models import ExecutionStatus
from services.core.db.session import session_factory
from services.spawner.jobs import job_name
from tests.spawner.conftest import (
    dlq_messages,
    executions,
    manual_message,
    queue_empty,
    send,
    set_visibility_timeout,
    wait_for,
)


def settled(queues, spawner) -> bool:
    return queue_empty(queues) and spawner.parts.spawner.idle()


def test_message_becomes_execution_and_job(db, queues, emulator, workflow, start_spawner):
    message = manual_message(workflow, {"who": "you"})
    send(queues, message.to_json())
    spawner = start_spawner()
    assert wait_for(lambda: settled(queues, spawner) and len(emulator.jobs()) == 1)
    assert spawner.stop() == 0
    [execution] = executions(db)
    assert execution.dedup_key == message.dedup_key
    assert execution.status == ExecutionStatus.STARTING
    assert execution.job_name == job_name(execution.id)
    job = emulator.jobs()[execution.job_name]
    env = {v["name"]: v.get("value") for v in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert json.loads(env["WORKFLOW_INPUT"]) == {"who": "you"}
    metrics = spawner.parts.metrics
    assert metrics.jobs_created._value.get() == 1
    assert metrics.message_to_job._sum.get() > 0


def test_same_message_twice(db, queues, emulator, workflow, start_spawner):
    body = manual_message(workflow).to_json()
    send(queues, body)
    spawner = start_spawner(concurrency=1)
    assert wait_for(lambda: settled(queues, spawner) and len(emulator.jobs()) == 1)
    send(queues, body)
    assert wait_for(lambda: spawner.parts.metrics.duplicates._value.get() == 1 and settled(queues, spawner))
    spawner.stop()
    assert len(executions(db)) == 1
    assert len(emulator.jobs()) == 1


def test_three_concurrent_deliveries(db, queues, emulator, workflow, start_spawner):
    body = manual_message(workflow).to_json()
    send(queues, body, body, body)
    spawner = start_spawner(concurrency=8)
    assert wait_for(lambda: spawner.parts.metrics.messages_received._value.get() == 3 and settled(queues, spawner))
    spawner.stop()
    [execution] = executions(db)
    assert execution.status == ExecutionStatus.STARTING
    assert list(emulator.jobs()) == [job_name(execution.id)]
    metrics = spawner.parts.metrics
    assert metrics.executions_created._value.get() == 1
    assert metrics.duplicates._value.get() == 2


class SimulatedCrash(BaseException):
    """Raised from a checkpoint: like the process dying there (nothing catches it)."""


@pytest.mark.parametrize("stage", ["inserted", "launched", "recorded"])
def test_killed_mid_message_then_restarted(db, queues, emulator, workflow, start_spawner, stage):
    set_visibility_timeout(queues, 1)
    send(queues, manual_message(workflow).to_json())
    crashed: list[uuid.UUID] = []

    def checkpoint(name: str, execution_id: uuid.UUID) -> None:
        if name == stage:
            crashed.append(execution_id)
            raise SimulatedCrash(name)

    first = start_spawner(checkpoint=checkpoint)
    assert wait_for(lambda: crashed and first.parts.spawner.idle())
    first.stop()
    assert len(executions(db)) == 1
    assert len(emulator.jobs()) == (0 if stage == "inserted" else 1)

    second = start_spawner()  # a fresh process; the message reappears after its visibility timeout
    assert wait_for(
        lambda: settled(queues, second) and executions(db)[0].status == ExecutionStatus.STARTING, timeout=10
    )
    second.stop()
    [execution] = executions(db)
    assert execution.id == crashed[0]
    assert list(emulator.jobs()) == [job_name(execution.id)]


def test_api_error_then_success(db, queues, emulator, workflow, start_spawner):
    emulator.fail_creates(1)
    send(queues, manual_message(workflow).to_json())
    spawner = start_spawner()
    assert wait_for(lambda: settled(queues, spawner) and len(emulator.jobs()) == 1)
    spawner.stop()
    [execution] = executions(db)
    assert execution.status == ExecutionStatus.STARTING
    assert spawner.parts.metrics.spawn_failures._value.get() == 1
    assert dlq_messages(queues) == []


def test_api_always_failing_fails_the_execution_and_dead_letters(db, queues, emulator, workflow, start_spawner):
    emulator.fail_creates(100)
    message = manual_message(workflow)
    send(queues, message.to_json())
    spawner = start_spawner()
    assert wait_for(
        lambda: settled(queues, spawner) and executions(db) and executions(db)[0].status == ExecutionStatus.FAILED
    )
    spawner.stop()
    [execution] = executions(db)
    assert "could not create the runner Job after 3 attempts" in execution.error
    assert "HTTP 500" in execution.error
    assert emulator.jobs() == {}
    [parked] = dlq_messages(queues)
    assert parked["Body"] == message.to_json()
    assert "HTTP 500" in parked["MessageAttributes"]["reason"]["StringValue"]
    assert spawner.parts.metrics.spawn_failures._value.get() == 3


def test_job_already_exists_is_success(db, queues, emulator, workflow, start_spawner):
    message = manual_message(workflow)
    send(queues, message.to_json())
    # Find the execution id the spawner will use: insert it first, as a previous crashed run did.
    from services.core.db.session import session_factory
    from services.core.executions import insert_execution

    with session_factory(db)() as session:
        execution, _ = insert_execution(session, message)
        session.commit()
    from tests.spawner.conftest import JOBS

    emulator.put(
        JOBS,
        job_name(execution.id),
        {"metadata": {"name": job_name(execution.id), "namespace": "runs", "labels": {"app": "workflow-runner"}}},
    )
    spawner = start_spawner()
    assert wait_for(lambda: settled(queues, spawner) and executions(db)[0].status == ExecutionStatus.STARTING)
    spawner.stop()
    assert len(emulator.jobs()) == 1
    assert spawner.parts.metrics.jobs_created._value.get() == 0
    assert spawner.parts.metrics.spawn_failures._value.get() == 0


def test_duplicate_of_a_finished_execution_only_deletes_the_message(db, queues, emulator, workflow, start_spawner):
    from services.core.db.session import session_factory
    from services.core.executions import insert_execution, transition

    message = manual_message(workflow)
    with session_factory(db)() as session:
        execution, _ = insert_execution(session, message)
        transition(session, execution.id, ["pending"], ExecutionStatus.SUCCEEDED)
        session.commit()
    send(queues, message.to_json())
    spawner = start_spawner()
    assert wait_for(lambda: settled(queues, spawner) and spawner.parts.metrics.duplicates._value.get() == 1)
    spawner.stop()
    assert emulator.jobs() == {}
    assert executions(db)[0].status == ExecutionStatus.SUCCEEDED


def test_slow_message_has_its_visibility_extended(db, queues, emulator, workflow, start_spawner):
    set_visibility_timeout(queues, 2)
    emulator.slow_creates(3.0)  # longer than the visibility timeout
    send(queues, manual_message(workflow).to_json())
    spawner = start_spawner(concurrency=2)
    assert wait_for(lambda: len(emulator.jobs()) == 1 and settled(queues, spawner), timeout=10)
    spawner.stop()
    # Without the extension the message would have reappeared at 2 s and been received again.
    assert spawner.parts.metrics.messages_received._value.get() == 1
    assert spawner.parts.metrics.duplicates._value.get() == 0


def test_a_long_running_spawner_keeps_no_record_per_launched_run(db, queues, emulator, workflow, start_spawner):
    # Only `--drain` needs to know which runs this process launched; a Deployment that runs for
    # months must not grow a set of every execution it ever started.
    for _ in range(5):
        send(queues, manual_message(workflow).to_json())
    spawner = start_spawner()
    assert wait_for(lambda: settled(queues, spawner) and len(emulator.jobs()) == 5)
    assert spawner.parts.spawner.launched() == {}
    assert spawner.stop() == 0


def test_a_workflow_re_applied_while_its_run_is_queued_gives_the_job_its_new_timeout(
    db, queues, emulator, workflow, start_spawner
):
    from services.core.db.session import session_factory
    from services.core.workflows import apply_workflow, validate_workflow

    send(queues, manual_message(workflow).to_json())
    with session_factory(db)() as session, session.begin():
        apply_workflow(session, validate_workflow({**workflow.definition, "timeout_seconds": 45}))
    spawner = start_spawner()
    assert wait_for(lambda: settled(queues, spawner) and len(emulator.jobs()) == 1)
    spawner.stop()
    [job] = emulator.jobs().values()
    assert job["spec"]["activeDeadlineSeconds"] == 45


def test_drain_check_survives_a_database_outage():
    """`--drain` asks again later when Postgres is briefly unreachable, instead of crashing."""
    import threading
    import uuid as uuid_module
    from types import SimpleNamespace

    from sqlalchemy.exc import OperationalError

    from services.spawner.consume import Spawner

    def unreachable():
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    state = SimpleNamespace(
        _lock=threading.Lock(),
        _in_flight={},
        _acks=[],
        _launched={uuid_module.uuid4(): "workflow-exec-x"},
        queue=SimpleNamespace(approximate_depth=lambda: 0),
        launcher=SimpleNamespace(process_ended=lambda name: False),
        session_maker=unreachable,
    )
    assert Spawner._drained(state) is False


def test_drain_waits_for_an_admitted_run_whose_job_is_not_created_yet(db, workflow):
    """A run admitted when a slot freed, whose Job creation failed (the API was down): the
    run-control sweep launches it again, so `--drain` must not exit before it has a Job."""
    import threading
    from types import SimpleNamespace

    from services.core.db.models import Execution
    from services.core.executions import insert_execution, transition
    from services.spawner.consume import Spawner
    from tests.spawner.conftest import manual_message

    state = SimpleNamespace(
        _lock=threading.Lock(), _in_flight={}, _acks=[], _launched={},
        queue=SimpleNamespace(approximate_depth=lambda: 0),
        launcher=SimpleNamespace(process_ended=lambda name: True),
        session_maker=session_factory(db),
    )
    assert Spawner._drained(state) is True
    with session_factory(db)() as session, session.begin():
        execution, _ = insert_execution(session, manual_message(workflow))
        transition(session, execution.id, ["pending"], ExecutionStatus.STARTING, admitted_at=datetime.now(UTC))
    assert Spawner._drained(state) is False
    with session_factory(db)() as session, session.begin():
        session.execute(Execution.__table__.update().values(job_name="workflow-exec-x"))
    assert Spawner._drained(state) is True


def test_a_connection_postgres_closed_costs_no_redelivery(db, queues, emulator, workflow, start_spawner, caplog):
    """The spawner's pool does not ping before each use; a pooled connection that Postgres
    closed (a restart, a failover, an idle-connection reaper) fails its first statement, and the
    handler runs its unit of work again on a new connection instead of giving the message back."""
    from services.contract import SPAWNER_APPLICATION_NAME
    from tests.runtime.test_runner_reconnects import terminate

    spawner = start_spawner(concurrency=1)
    send(queues, manual_message(workflow).to_json())
    assert wait_for(lambda: settled(queues, spawner) and len(emulator.jobs()) == 1)
    assert terminate(db, SPAWNER_APPLICATION_NAME) >= 1
    caplog.set_level("INFO", logger="services.spawner")
    send(queues, manual_message(workflow).to_json())
    assert wait_for(lambda: settled(queues, spawner) and len(emulator.jobs()) == 2)
    spawner.stop()
    messages = [record.getMessage() for record in caplog.records]
    assert "database connection was closed; retrying on a new one" in messages
    assert "message handling failed" not in messages
    assert sorted(e.status for e in executions(db)) == [ExecutionStatus.STARTING] * 2
