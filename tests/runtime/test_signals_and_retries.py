"""The runner as a process (SIGTERM) and the retry loop through the dispatcher."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from services.core.db.models import Execution, StepRun
from services.core.db.session import session_factory
from services.core.executions import insert_execution
from services.core.messages import parse_message
from services.core.queue import Queue
from services.runtime.runner import execute
from tests.runtime.conftest import load, runner_env, seed

ROOT = Path(__file__).resolve().parents[2]
SLEEPER = """
name: sleeper
steps:
  - {id: hello, type: log, with: {message: "starting"}}
  - {id: nap, type: sleep, with: {seconds: 60}}
  - {id: never, type: log, with: {message: "not reached"}}
"""


def start_runner(db: str, seeded) -> subprocess.Popen[bytes]:
    env = {**os.environ, **runner_env(db, seeded), "LOG_FORMAT": "json"}
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "execute"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def wait_for_step(db: str, execution_id: uuid.UUID, step_id: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with session_factory(db)() as session:
            status = session.scalar(
                select(StepRun.status).where(StepRun.execution_id == execution_id, StepRun.step_id == step_id)
            )
        if status == "running":
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError(f"step {step_id} never started")


def test_sigterm_mid_step_times_out_within_seconds(db) -> None:
    seeded = seed(db, SLEEPER)
    process = start_runner(db, seeded)
    try:
        wait_for_step(db, seeded.execution_id, "nap", process)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)
        elapsed = time.monotonic() - signalled
    finally:
        process.kill()
        _, stderr = process.communicate()
    assert elapsed < 6, elapsed  # about a second; the nap would last a minute
    assert code == 143, stderr.decode()
    execution, steps = load(db, seeded.execution_id)
    assert execution.status == "timed_out"
    assert execution.error == "stopped by SIGTERM (deadline exceeded or pod evicted) during step 'nap'"
    assert [(s.step_id, s.status) for s in steps] == [("hello", "succeeded"), ("nap", "timed_out")]
    assert b'"execution_id": "' + str(seeded.execution_id).encode() in stderr
    assert b'"step_id": "nap"' in stderr


def test_sigterm_after_the_spawner_cancelled_leaves_it_cancelled(db) -> None:
    seeded = seed(db, SLEEPER)
    process = start_runner(db, seeded)
    try:
        wait_for_step(db, seeded.execution_id, "nap", process)
        with session_factory(db)() as session, session.begin():
            session.execute(update(Execution).where(Execution.id == seeded.execution_id).values(status="cancelled"))
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=5)
    finally:
        process.kill()
        process.communicate()
    execution, steps = load(db, seeded.execution_id)
    assert execution.status == "cancelled"
    assert steps[-1].status == "cancelled"


def test_retries_produce_exactly_max_attempts_executions_with_backoff(db, queues) -> None:
    from services.dispatcher.tick import tick

    seeded = seed(db, """
name: flaky
retry: {max_attempts: 3, backoff_seconds: 30, backoff_multiplier: 2}
steps:
  - {id: boom, type: fail, with: {message: "always"}}
""")
    maker = session_factory(db)
    queue = Queue(queues.client, queues.queue_url)
    execution_id = seeded.execution_id
    delays = []
    for attempt in range(1, 10):
        assert execute(runner_env(db, seeded.__class__(seeded.workflow_id, execution_id))) == 1
        execution, _ = load(db, execution_id)
        assert execution.status == "failed" and execution.attempt == attempt
        if execution.next_retry_at is None:
            break
        delays.append((execution.next_retry_at - execution.finished_at).total_seconds())
        # A tick just before the retry is due sends nothing; one just after sends exactly one.
        tick(maker, queue, now=execution.next_retry_at - timedelta(seconds=1))
        assert queues.drain() == []
        tick(maker, queue, now=execution.next_retry_at + timedelta(seconds=1))
        messages = queues.drain()
        assert len(messages) == 1
        message = parse_message(messages[0]["Body"])
        assert message.attempt == attempt + 1 and message.retry_of == execution_id
        with maker() as session, session.begin():
            retry, created = insert_execution(session, message)
            assert created
            execution_id = retry.id
    with maker() as session:
        executions = list(session.scalars(select(Execution).order_by(Execution.attempt)))
    assert [e.attempt for e in executions] == [1, 2, 3]
    assert all(e.status == "failed" for e in executions)
    assert delays == [30.0, 60.0]
    # Nothing more is due, ever.
    tick(maker, queue, now=executions[-1].finished_at + timedelta(days=1))
    assert queues.drain() == []
