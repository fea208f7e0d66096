"""`concurrency: {limit: 2}` with 10 runs enqueued at once, on the real local platform: the
spawner as a process with the local launcher, real runner processes, Postgres and SQS. Never
more than 2 hold a slot, all 10 succeed, admitted in the order they were queued, and killing
the spawner mid-way (SIGKILL) loses none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.core.db.models import SLOT_STATUSES, Execution, ExecutionStatus
from services.core.db.session import session_factory
from services.core.workflows import apply_workflow, parse_workflow
from tests.spawner.conftest import WORKTREE, executions, manual_message, send, set_visibility_timeout, wait_for

LIMITED = """
name: limited
concurrency: {{limit: 2}}
timeout_seconds: 60
steps:
  - {{id: call, type: http, with: {{url: "{url}/count/run-{{{{ input.i }}}}"}}}}
  - {{id: work, type: sleep, with: {{seconds: 0.5}}}}
"""


def start_spawner_process(tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(WORKTREE),
        "RUNNER_DENY_PRIVATE_NETWORKS": "0",
        "LOG_FORMAT": "json",
    }
    command = [
        sys.executable, "-m", "services.cli", "spawn", "--launcher", "local", "--health-port", "-1",
        "--wait-seconds", "1", "--reconcile-seconds", "2", "--concurrency", "1", "--max-local-runs", "8",
    ]
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen(command, cwd=WORKTREE, env=env, stdout=log, stderr=subprocess.STDOUT)


class Sampler(threading.Thread):
    """Counts the runs holding a slot every 50 ms."""

    def __init__(self, db: str) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.samples: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        slot = [str(s) for s in SLOT_STATUSES]
        while not self.done.wait(0.05):
            with session_factory(self.db)() as session:
                self.samples.append(session.scalar(select(func.count()).where(Execution.status.in_(slot))) or 0)


def succeeded(db: str) -> int:
    return sum(1 for e in executions(db) if e.status == ExecutionStatus.SUCCEEDED)


@pytest.mark.slow
def test_limit_two_with_ten_runs_and_a_spawner_killed_midway(db, queues, counting_server, tmp_path):
    set_visibility_timeout(queues, 5)  # a message the killed spawner held comes back soon
    with session_factory(db)() as session:
        workflow, _ = apply_workflow(session, parse_workflow(LIMITED.format(url=counting_server.url)))
        session.commit()
    send(queues, *(manual_message(workflow, {"i": i}).to_json() for i in range(10)))
    sampler = Sampler(db)
    sampler.start()
    first = start_spawner_process(tmp_path, "first")
    second = None
    try:
        assert wait_for(lambda: succeeded(db) >= 3, timeout=60, interval=0.1), (tmp_path / "first.log").read_text()
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert any(e.status == ExecutionStatus.QUEUED for e in executions(db)), "nothing left queued at the kill"
        second = start_spawner_process(tmp_path, "second")
        assert wait_for(lambda: succeeded(db) == 10, timeout=120, interval=0.2), [
            (e.status, e.queued_reason, e.error) for e in executions(db)
        ]
    finally:
        sampler.done.set()
        sampler.join(timeout=5)
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
    rows = executions(db)
    assert len(rows) == 10 and {r.status for r in rows} == {ExecutionStatus.SUCCEEDED}
    assert max(sampler.samples) == 2, "never more than the limit, and the limit was used"
    assert all(counting_server.count(f"/count/run-{i}") == 1 for i in range(10))  # each ran once
    # Admitted in the order they were queued (a slot goes to the oldest waiting run).
    by_queue_order = sorted(rows, key=lambda r: (r.created_at, r.id))
    admitted = [r.admitted_at for r in by_queue_order]
    assert all(a is not None for a in admitted)
    assert admitted == sorted(admitted)
