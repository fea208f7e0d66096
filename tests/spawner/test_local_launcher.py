"""The local launcher: the Job's environment, its deadline, idempotent names, and `--drain`."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest

from services.core.db.models import ExecutionStatus
from services.core.db.session import session_factory
from services.core.executions import get_execution, insert_execution
from services.spawner.jobs import build_job
from services.spawner.launchers.local import LocalLauncher
from services.spawner.outcomes import JobState
from services.spawner.reconciler import Reconciler
from services.spawner.runner_template import DEFAULT_TEMPLATE_PATH, load_template_file
from tests.fakes import FakeExecution, FakeWorkflow
from tests.spawner.conftest import WORKTREE, executions, manual_message, send

# A runner that records success the way the real one does (a conditional update), echoing the
# environment it was given into the execution's output.
SUCCEEDING = """
import json, os, psycopg
names = ("WORKFLOW_ID", "EXECUTION_ID", "WORKFLOW_INPUT", "DATABASE_URL", "INTEGRATION_ENCRYPTION_KEY", "LOG_FORMAT")
env = {k: os.environ.get(k) for k in names}
with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
    conn.execute(
        "UPDATE executions SET status = 'succeeded', finished_at = now(), output = %s "
        "WHERE id = %s AND status IN ('pending', 'starting', 'running')",
        (json.dumps(env), os.environ["EXECUTION_ID"]),
    )
"""
SLEEPING = "import time\ntime.sleep(30)\n"
FAILING = "import sys\nsys.exit(3)\n"




def script(tmp_path: Path, source: str) -> list[str]:
    path = tmp_path / f"runner_{uuid.uuid4().hex[:6]}.py"
    path.write_text(source)
    return [sys.executable, str(path)]


@pytest.fixture
def template():
    return load_template_file(DEFAULT_TEMPLATE_PATH, "local")


def test_deadline_sigterm_then_outcome(tmp_path, template):
    launcher = LocalLauncher(script(tmp_path, SLEEPING), grace_seconds=0.5, poll_seconds=0.05)
    try:
        job = build_job(template, FakeExecution(), FakeWorkflow(timeout_seconds=1))
        assert launcher.launch(job) is True
        assert launcher.launch(job) is False  # idempotent per name
        assert launcher.wait_idle(timeout=5)
        [outcome] = launcher.observe()
        assert outcome.state == JobState.TIMED_OUT
        assert outcome.reason == "deadline exceeded after 1s"
    finally:
        launcher.close()


def test_non_zero_exit_and_delete(tmp_path, template):
    failing = LocalLauncher(script(tmp_path, FAILING), poll_seconds=0.05)
    sleeping = LocalLauncher(script(tmp_path, SLEEPING), grace_seconds=0.5, poll_seconds=0.05)
    try:
        failing.launch(build_job(template, FakeExecution(), FakeWorkflow()))
        assert failing.wait_idle(timeout=5)
        [outcome] = failing.observe()
        assert (outcome.state, outcome.reason) == (JobState.FAILED, "runner exited with code 3")

        job = build_job(template, FakeExecution(), FakeWorkflow())
        sleeping.launch(job)
        sleeping.delete(job.metadata.name)
        assert sleeping.wait_idle(timeout=5)
        [outcome] = sleeping.observe()
        assert outcome.state == JobState.FAILED and outcome.reason == "Job deleted"
        assert sleeping.process_ended(job.metadata.name)
    finally:
        failing.close()
        sleeping.close()


def test_bounded_concurrency(tmp_path, template):
    launcher = LocalLauncher(script(tmp_path, SLEEPING), max_running=2, grace_seconds=0.2, poll_seconds=0.05)
    try:
        jobs = [build_job(template, FakeExecution(), FakeWorkflow()) for _ in range(3)]
        for job in jobs:
            launcher.launch(job)
        states = sorted(outcome.state for outcome in launcher.observe())
        assert states == [JobState.PENDING, JobState.RUNNING, JobState.RUNNING]
        for job in jobs:
            launcher.delete(job.metadata.name)
        assert launcher.wait_idle(timeout=5)
    finally:
        launcher.close()


def test_failed_exit_without_status_is_reconciled(db, workflow, tmp_path, template):
    with session_factory(db)() as session:
        execution, _ = insert_execution(session, manual_message(workflow))
        session.commit()
    launcher = LocalLauncher(script(tmp_path, FAILING), poll_seconds=0.05)
    try:
        launcher.launch(build_job(template, execution, workflow))
        assert launcher.wait_idle(timeout=5)
        Reconciler(session_factory(db), launcher).run_once()
    finally:
        launcher.close()
    with session_factory(db)() as session:
        row = get_execution(session, execution.id)
        assert (row.status, row.error) == (ExecutionStatus.FAILED, "runner exited with code 3")


def test_drain_with_the_local_launcher(db, queues, workflow, tmp_path, start_spawner, monkeypatch):
    monkeypatch.setenv("INTEGRATION_ENCRYPTION_KEY", "test-key")
    monkeypatch.setenv("PYTHONPATH", str(WORKTREE))
    messages = [manual_message(workflow, {"i": i}) for i in range(3)]
    send(queues, *(m.to_json() for m in messages))
    spawner = start_spawner(
        launcher="local", drain=True, runner_command=script(tmp_path, SUCCEEDING), reconcile_seconds=0.5
    )
    spawner.thread.join(timeout=20)
    assert not spawner.thread.is_alive(), "--drain did not exit"
    assert spawner.stop() == 0
    rows = executions(db)
    assert len(rows) == 3
    assert {r.status for r in rows} == {ExecutionStatus.SUCCEEDED}
    for row in rows:
        env = row.output
        assert env["EXECUTION_ID"] == str(row.id)
        assert env["WORKFLOW_ID"] == str(workflow.id)
        assert json.loads(env["WORKFLOW_INPUT"]) == row.input
        assert env["DATABASE_URL"] == db  # passed through: no Secrets on one machine
        assert env["INTEGRATION_ENCRYPTION_KEY"] == "test-key"
        assert env["LOG_FORMAT"] == "json"


def test_drain_fails_runs_that_exit_without_a_status(db, queues, workflow, tmp_path, start_spawner):
    send(queues, manual_message(workflow).to_json())
    spawner = start_spawner(launcher="local", drain=True, runner_command=script(tmp_path, FAILING))
    spawner.thread.join(timeout=20)
    assert not spawner.thread.is_alive(), "--drain did not exit"
    spawner.stop()
    [row] = executions(db)
    assert (row.status, row.error) == (ExecutionStatus.FAILED, "runner exited with code 3")


def test_runner_environment_follows_the_template_unless_the_machine_overrides(template):
    from services.spawner.launchers.local import job_environment

    job = build_job(template, FakeExecution(), FakeWorkflow())
    secrets = {"DATABASE_URL": "postgresql://db", "INTEGRATION_ENCRYPTION_KEY": "k", "AWS_SECRET_ACCESS_KEY": "no"}
    cluster_like = job_environment(job, secrets)
    assert cluster_like["RUNNER_DENY_PRIVATE_NETWORKS"] == "1"  # the template's value
    assert cluster_like["DATABASE_URL"] == "postgresql://db" and "AWS_SECRET_ACCESS_KEY" not in cluster_like
    on_one_machine = job_environment(job, {**secrets, "RUNNER_DENY_PRIVATE_NETWORKS": "0", "LOG_FORMAT": "text"})
    assert on_one_machine["RUNNER_DENY_PRIVATE_NETWORKS"] == "0" and on_one_machine["LOG_FORMAT"] == "text"


def test_a_runner_killed_by_a_signal_without_a_name_still_ends(tmp_path, template):
    # Real-time signals (SIGRTMIN+1 ..) have no `signal.Signals` member; naming one must not
    # wedge the launcher (every observe, launch and reconcile pass would raise from then on).
    killed = "import os, signal\nos.kill(os.getpid(), signal.SIGRTMIN + 1)\n"
    launcher = LocalLauncher(script(tmp_path, killed), poll_seconds=0.05)
    try:
        launcher.launch(build_job(template, FakeExecution(), FakeWorkflow()))
        assert launcher.wait_idle(timeout=5)
        [outcome] = launcher.observe()
        assert outcome.state == JobState.FAILED
        assert outcome.reason == f"runner killed by signal {int(__import__('signal').SIGRTMIN) + 1}"
    finally:
        launcher.close()


def launched_and_recorded(launcher: LocalLauncher, job, runs_dir):
    """Launch `job` and wait (bounded) until its runner is up and its pid recorded; its process."""
    import time

    name = job.metadata.name
    assert launcher.launch(job) is True
    for _ in range(100):
        if (runs_dir / f"{name}.pid").exists():
            break
        time.sleep(0.05)
    return launcher._runs[name].process


def test_a_restarted_spawner_adopts_the_runs_of_its_predecessor(tmp_path, template):
    """At most one runner per execution on one machine, across a spawner restart."""
    import time

    runs_dir = tmp_path / "runs"
    job = build_job(template, FakeExecution(), FakeWorkflow(timeout_seconds=60))
    name = job.metadata.name
    before = LocalLauncher(script(tmp_path, SLEEPING), poll_seconds=0.05, runs_dir=runs_dir)
    after = LocalLauncher(script(tmp_path, SLEEPING), poll_seconds=0.05, runs_dir=runs_dir)
    try:
        original = launched_and_recorded(before, job, runs_dir)

        assert after.launch(job) is False  # the same Job again, from a new spawner: adopted
        assert after._runs[name].process is None
        assert [o.state for o in after.observe() if o.job_name == name] == [JobState.RUNNING]

        original.kill()
        original.wait(timeout=5)
        before.observe()  # the old launcher reaps its child
        for _ in range(100):
            outcomes = [o for o in after.observe() if o.job_name == name]
            if outcomes and outcomes[0].state == JobState.FAILED:
                break
            time.sleep(0.05)
        assert outcomes[0].state == JobState.FAILED and outcomes[0].reason == "runner process ended"
        assert not (runs_dir / f"{name}.pid").exists()
    finally:
        before.close()
        after.close()


def test_deleting_an_adopted_runner_stops_its_process(tmp_path, template):
    """A run cancelled after a spawner restart: the new spawner has only the runner's pid, and
    must still stop it (its slot frees only once the process is gone)."""
    import time

    runs_dir = tmp_path / "runs"
    job = build_job(template, FakeExecution(), FakeWorkflow(timeout_seconds=60))
    name = job.metadata.name
    before = LocalLauncher(script(tmp_path, SLEEPING), poll_seconds=0.05, runs_dir=runs_dir)
    after = LocalLauncher(script(tmp_path, SLEEPING), poll_seconds=0.05, runs_dir=runs_dir, grace_seconds=2)
    try:
        original = launched_and_recorded(before, job, runs_dir)
        assert after.launch(job) is False and after._runs[name].adopted_pid == original.pid
        after.delete(name)
        assert original.wait(timeout=10) is not None  # the runner was stopped
        before.observe()
        for _ in range(100):
            outcomes = [o for o in after.observe() if o.job_name == name]
            if outcomes and outcomes[0].state == JobState.FAILED:
                break
            time.sleep(0.05)
        assert outcomes[0].reason == "Job deleted" and after.process_ended(name)
    finally:
        before.close()
        after.close()
