"""A local runner killed before it claimed its run (no step ran) is launched again instead of
failing the run (issue 15, Faults: a platform fault must not become a user-visible failure)."""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import timedelta

from sqlalchemy import select, update

from services.core.db.models import Execution, ExecutionStatus
from services.core.db.session import session_factory
from services.spawner.jobs import job_name
from services.spawner.launchers.local import LocalLauncher
from services.spawner.message_handler import MessageHandler
from services.spawner.metrics import SpawnerMetrics
from services.spawner.reconciler import Reconciler
from services.spawner.runner_template import DEFAULT_TEMPLATE_PATH, load_template_file
from tests.runtime.conftest import seed
from tests.spawner.conftest import WORKTREE

HELLO = """
name: hello-once
steps:
  - {id: hello, type: log, with: {message: "hi"}}
"""


def test_a_runner_killed_before_its_claim_is_launched_again(db, tmp_path):
    seeded = seed(db, HELLO, status="starting")
    with session_factory(db)() as session, session.begin():
        session.execute(
            update(Execution).where(Execution.id == seeded.execution_id).values(job_name=job_name(seeded.execution_id))
        )
    marker = tmp_path / "first-start"
    # The first start hangs before the runner (as a slow image start would) and gets killed;
    # the second one is the real runner.
    script = f'if [ ! -f "{marker}" ]; then touch "{marker}"; sleep 60; fi; exec "{sys.executable}" -m services.cli execute'
    environ = {**os.environ, "PYTHONPATH": str(WORKTREE), "RUNNER_DENY_PRIVATE_NETWORKS": "0"}
    launcher = LocalLauncher(
        command=["/bin/sh", "-c", script], environ=environ, cwd=str(WORKTREE), runs_dir=tmp_path / "runs",
        poll_seconds=0.05,
    )
    sessions = session_factory(db)
    handler = MessageHandler(sessions, launcher, load_template_file(DEFAULT_TEMPLATE_PATH, "local"), SpawnerMetrics())
    reconciler = Reconciler(
        sessions, launcher, timedelta(minutes=5), relaunch=handler.relaunch, relaunch_grace=timedelta(0)
    )
    try:
        assert handler.relaunch(seeded.execution_id)
        pid_file = tmp_path / "runs" / f"{job_name(seeded.execution_id)}.pid"
        deadline = time.monotonic() + 10
        while not (pid_file.exists() and marker.exists()) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        status = None
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            reconciler.run_once()
            with sessions() as session:
                status, error = session.execute(
                    select(Execution.status, Execution.error).where(Execution.id == seeded.execution_id)
                ).one()
            if status not in ("starting", "running"):
                break
            time.sleep(0.2)
    finally:
        launcher.wait_idle(timeout=20)
        launcher.close()
    assert (status, error) == (ExecutionStatus.SUCCEEDED, None)
    with sessions() as session:
        assert session.scalar(select(Execution.id).where(Execution.retry_of == seeded.execution_id)) is None
