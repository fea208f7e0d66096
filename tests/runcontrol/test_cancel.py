"""Cancel: a running local run is stopped within seconds, its later steps never run; a Job in
the cluster (kmock) is deleted; runs not yet running end `cancelled` at once; finished runs
cannot be cancelled."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from services.core.audit import cli_actor
from services.core.db.models import Execution, ExecutionStatus, StepRun
from services.core.db.session import session_factory
from services.core.executions import finish_execution, insert_execution, transition
from services.core.workflows import apply_workflow, parse_workflow
from services.spawner.jobs import job_name
from tests.spawner.conftest import WORKTREE, executions, manual_message, send, wait_for

THREE_STEPS = """
name: slow
timeout_seconds: 120
steps:
  - {{id: first, type: http, with: {{url: "{url}/count/first"}}}}
  - {{id: nap, type: sleep, with: {{seconds: 60}}}}
  - {{id: last, type: http, with: {{url: "{url}/count/last"}}}}
"""


def apply(db: str, yaml: str):
    with session_factory(db)() as session:
        workflow, _ = apply_workflow(session, parse_workflow(yaml))
        session.commit()
        return workflow


def step_status(db: str, execution_id: uuid.UUID, step_id: str) -> str | None:
    with session_factory(db)() as session:
        return session.scalar(
            select(StepRun.status).where(StepRun.execution_id == execution_id, StepRun.step_id == step_id)
        )


def row(db: str, execution_id: uuid.UUID) -> Execution:
    with session_factory(db)() as session:
        execution = session.get(Execution, execution_id)
        assert execution is not None
        return execution


@pytest.mark.slow
def test_cancelling_a_running_local_run_stops_it_within_seconds(
    db, queues, counting_server, start_spawner, wfctl, monkeypatch
):
    monkeypatch.setenv("PYTHONPATH", str(WORKTREE))
    monkeypatch.setenv("RUNNER_DENY_PRIVATE_NETWORKS", "0")
    workflow = apply(db, THREE_STEPS.format(url=counting_server.url))
    send(queues, manual_message(workflow).to_json())
    spawner = start_spawner(launcher="local")
    assert wait_for(lambda: len(executions(db)) == 1, timeout=20)
    [execution] = executions(db)
    assert wait_for(lambda: step_status(db, execution.id, "nap") == "running", timeout=30), row(db, execution.id).error
    process = spawner.parts.launcher._runs[job_name(execution.id)].process
    assert process is not None and process.poll() is None

    result = wfctl("executions", "cancel", str(execution.id))
    assert result.code == 0 and "being stopped" in result.out
    started = time.monotonic()
    assert wait_for(lambda: process.poll() is not None, timeout=5), "the runner process is still alive after 5 s"
    assert time.monotonic() - started < 5
    assert wait_for(lambda: row(db, execution.id).status == ExecutionStatus.CANCELLED, timeout=5)
    ended = row(db, execution.id)
    assert ended.cancel_requested_by == cli_actor()
    assert ended.error.startswith(f"cancelled by {cli_actor()}")
    assert step_status(db, execution.id, "first") == "succeeded"
    assert step_status(db, execution.id, "nap") == "cancelled"
    assert step_status(db, execution.id, "last") == "cancelled"
    time.sleep(0.5)
    assert counting_server.count("/count/first") == 1
    assert counting_server.count("/count/last") == 0  # the remaining step never ran

    again = wfctl("executions", "cancel", str(execution.id))  # idempotent
    assert again.code == 0 and "already cancelled" in again.out
    shown = wfctl("executions", "show", str(execution.id), "--output", "json").json()
    assert shown["cancel_requested_by"] == cli_actor()
    assert [s["status"] for s in shown["steps"]] == ["succeeded", "cancelled", "cancelled"]
    spawner.stop()


def test_cancelling_a_running_run_deletes_its_job_in_the_cluster(db, queues, emulator, workflow, start_spawner, wfctl):
    message = manual_message(workflow)
    send(queues, message.to_json())
    spawner = start_spawner()
    assert wait_for(lambda: len(emulator.jobs()) == 1)
    [execution] = executions(db)
    # The Job exists a moment before the spawner records `starting`.
    assert wait_for(lambda: row(db, execution.id).status == ExecutionStatus.STARTING)
    with session_factory(db)() as session:  # the runner claimed it
        assert transition(session, execution.id, [ExecutionStatus.STARTING], ExecutionStatus.RUNNING)
        session.commit()

    result = wfctl("executions", "cancel", str(execution.id)[:8])
    assert result.code == 0, result.err
    assert wait_for(lambda: emulator.jobs() == {}, timeout=5), "the Job was not deleted"
    assert row(db, execution.id).cancel_requested_by == cli_actor()
    # The runner's SIGTERM never comes from the emulator: the reconciler sees the Job gone.
    with session_factory(db)() as session:
        old = Execution.created_at - timedelta(hours=1)
        session.execute(update(Execution).where(Execution.id == execution.id).values(created_at=old))
        session.commit()
    spawner.parts.spawner.reconciler.run_once()
    assert row(db, execution.id).status == ExecutionStatus.CANCELLED
    spawner.stop()


@pytest.mark.parametrize("status", ["pending", "queued", "starting"])
def test_a_run_not_yet_running_is_cancelled_at_once_and_never_claimed(db, workflow, wfctl, status):
    from services.runtime.store import RunStore

    with session_factory(db)() as session:
        execution, _ = insert_execution(session, manual_message(workflow))
        session.execute(update(Execution).where(Execution.id == execution.id).values(status=status))
        session.commit()
    result = wfctl("executions", "cancel", str(execution.id))
    assert result.code == 0 and "cancelled" in result.out
    assert row(db, execution.id).status == ExecutionStatus.CANCELLED
    with RunStore.connect(db, execution.id) as store:
        assert store.claim(execution.id) is False  # a runner started late runs nothing


def test_a_starting_run_cancelled_gets_its_job_deleted(db, queues, emulator, workflow, start_spawner, wfctl):
    send(queues, manual_message(workflow).to_json())
    spawner = start_spawner()
    assert wait_for(lambda: len(emulator.jobs()) == 1 and executions(db)[0].status == ExecutionStatus.STARTING)
    [execution] = executions(db)
    assert wfctl("executions", "cancel", str(execution.id)).code == 0
    assert row(db, execution.id).status == ExecutionStatus.CANCELLED
    assert wait_for(lambda: emulator.jobs() == {}, timeout=5)
    spawner.stop()


def test_cancelling_a_finished_run_is_a_one_line_error(db, workflow, wfctl):
    with session_factory(db)() as session:
        execution, _ = insert_execution(session, manual_message(workflow))
        finish_execution(session, execution.id, ExecutionStatus.SUCCEEDED)
        session.commit()
    result = wfctl("executions", "cancel", str(execution.id))
    assert result.code == 2
    assert result.err.strip() == (
        f"error: execution: {execution.id} already ended succeeded; only an unfinished run can be cancelled"
    )
    assert row(db, execution.id).status == ExecutionStatus.SUCCEEDED
    assert row(db, execution.id).cancel_requested_by is None
    missing = wfctl("executions", "cancel", str(uuid.uuid4()))
    assert missing.code == 2 and missing.err.startswith("error: execution: no execution")


def test_the_runner_notices_a_cancel_request_by_itself(db, counting_server):
    """With no spawner to delete its Job, the runner still stops: it looks for the request
    once a second during a step, and records the run and its steps `cancelled`."""
    from services.core.executions import cancel_execution
    from tests.runtime.conftest import seed
    from tests.runtime.test_signals_and_retries import start_runner, wait_for_step

    seeded = seed(db, THREE_STEPS.format(url=counting_server.url))
    process = start_runner(db, seeded)
    try:
        wait_for_step(db, seeded.execution_id, "nap", process)
        with session_factory(db)() as session:
            assert cancel_execution(session, seeded.execution_id, "ops-bot").action == "requested"
            session.commit()
        code = process.wait(timeout=5)
    finally:
        process.kill()
        process.communicate()
    assert code == 1
    execution = row(db, seeded.execution_id)
    assert (execution.status, execution.error) == ("cancelled", "cancelled by ops-bot during step 'nap'")
    assert [step_status(db, seeded.execution_id, s) for s in ("first", "nap", "last")] == [
        "succeeded", "cancelled", "cancelled",
    ]
    assert counting_server.count("/count/last") == 0
