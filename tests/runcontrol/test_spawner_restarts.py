"""A spawner that dies or is stopped must not turn its runs into failures (issue 15, Faults).

Over the real local platform: the spawner as a process with the local launcher, real runner
processes, Postgres, SQS, and a counting HTTP server on 127.0.0.1. Before the fix, runs the
local launcher held in memory (over `--max-local-runs`) were lost with their spawner and failed
as "never started", and a restarted spawner failed a run whose runner was still alive (and its
retry made the run's http call a second time)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from services.core.db.models import ExecutionStatus
from services.core.db.session import session_factory
from services.core.workflows import apply_workflow, parse_workflow
from tests.spawner.conftest import WORKTREE, executions, manual_message, send, wait_for

SLOW = """
name: slow-{name}
timeout_seconds: 60
retry: {{max_attempts: 2, backoff_seconds: 1}}
steps:
  - {{id: call, type: http, with: {{url: "{url}/count/run-{{{{ input.i }}}}"}}}}
  - {{id: work, type: sleep, with: {{seconds: {seconds}}}}}
"""


def start_spawner(tmp_path: Path, name: str, *options: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(WORKTREE), "RUNNER_DENY_PRIVATE_NETWORKS": "0", "LOG_FORMAT": "json"}
    command = [
        sys.executable, "-m", "services.cli", "spawn", "--launcher", "local", "--health-port", "-1",
        "--wait-seconds", "1", "--reconcile-seconds", "1", "--runs-dir", str(tmp_path / "runs"), *options,
    ]
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen(command, cwd=WORKTREE, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop(*processes: subprocess.Popen[bytes] | None) -> None:
    for process in processes:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def apply(db: str, name: str, url: str, seconds: float):
    with session_factory(db)() as session:
        workflow, _ = apply_workflow(session, parse_workflow(SLOW.format(name=name, url=url, seconds=seconds)))
        session.commit()
        return workflow


def statuses(db: str) -> list[str]:
    return [str(e.status) for e in executions(db)]


def summary(db: str) -> list[tuple[str, int, str | None]]:
    return [(str(e.status), e.attempt, e.error) for e in executions(db)]


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "stopped"])
def test_runs_waiting_for_a_local_slot_survive_their_spawner(db, queues, counting_server, tmp_path, how):
    workflow = apply(db, "waiting", counting_server.url, 4)
    send(queues, *(manual_message(workflow, {"i": i}).to_json() for i in range(3)))
    first = start_spawner(tmp_path, "first", "--max-local-runs", "1", "--start-timeout", "120")
    second = None
    try:
        # One runs, two wait in the launcher's memory: all three `starting`/`running`, messages gone.
        assert wait_for(
            lambda: sorted(statuses(db)) == ["running", "starting", "starting"], timeout=60, interval=0.1
        ), (summary(db), (tmp_path / "first.log").read_text()[-3000:])
        first.send_signal(how)
        first.wait(timeout=40)
        second = start_spawner(tmp_path, "second", "--max-local-runs", "1", "--start-timeout", "120")
        assert wait_for(lambda: statuses(db).count("succeeded") == 3, timeout=60, interval=0.2), (
            summary(db), (tmp_path / "second.log").read_text()[-3000:],
        )
    finally:
        stop(first, second)
    rows = executions(db)
    assert [(r.status, r.attempt) for r in rows] == [(ExecutionStatus.SUCCEEDED, 1)] * 3
    assert [counting_server.count(f"/count/run-{i}") for i in range(3)] == [1, 1, 1]


@pytest.mark.slow
def test_a_restarted_spawner_leaves_a_live_runner_alone(db, queues, counting_server, tmp_path):
    """The runner keeps working while its spawner is killed and replaced: the new spawner adopts
    it from the runs folder, never fails it, and its http call happens once."""
    workflow = apply(db, "alive", counting_server.url, 8)
    send(queues, manual_message(workflow, {"i": 0}).to_json())
    # A short start timeout: before the fix, the new spawner failed the run 3 s after it began.
    first = start_spawner(tmp_path, "first", "--start-timeout", "3")
    second = None
    try:
        assert wait_for(lambda: counting_server.count("/count/run-0") == 1, timeout=60, interval=0.1), (
            summary(db), (tmp_path / "first.log").read_text()[-3000:],
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        second = start_spawner(tmp_path, "second", "--start-timeout", "3")
        assert wait_for(lambda: "running" not in statuses(db) and "starting" not in statuses(db)
                        and "pending" not in statuses(db), timeout=40, interval=0.2)
        assert wait_for(lambda: "succeeded" in statuses(db), timeout=10, interval=0.2), summary(db)
    finally:
        stop(first, second)
    assert summary(db) == [("succeeded", 1, None)]
    assert counting_server.count("/count/run-0") == 1
