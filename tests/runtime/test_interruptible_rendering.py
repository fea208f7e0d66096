"""Deadline and SIGTERM stop work done outside the step itself (issue 15, Faults): rendering a
step's `with`, evaluating its `if`. Before, they ran on the runner's main thread: a template loop
ran 60 s past a 5 s timeout and a SIGTERM left the execution `running` for more than 40 s."""

from __future__ import annotations

import signal
import time

from sqlalchemy import select

from services.core.db.models import StepRun
from services.core.db.session import session_factory
from tests.runtime.conftest import load, seed
from tests.runtime.test_signals_and_retries import start_runner

#: About 10^10 loop iterations: hours, unless something stops it.
ENDLESS = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"


def workflow(field: str) -> str:
    body = f'with: {{message: "{ENDLESS}"}}' if field == "with" else f'if: "{ENDLESS}", with: {{message: x}}'
    return f"""
name: spinner-{field}
timeout_seconds: 5
steps:
  - {{id: hello, type: log, with: {{message: "starting"}}}}
  - {{id: spin, type: log, {body}}}
"""


def wait_until_hello_done(db: str, execution_id, process) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with session_factory(db)() as session:
            status = session.scalar(
                select(StepRun.status).where(StepRun.execution_id == execution_id, StepRun.step_id == "hello")
            )
        if status == "succeeded":
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError("step hello never finished")


def test_an_endless_with_template_times_out_at_the_workflow_deadline(db) -> None:
    seeded = seed(db, workflow("with"))
    process = start_runner(db, seeded)
    started = time.monotonic()
    try:
        code = process.wait(timeout=40)
    finally:
        process.kill()
        process.communicate()
    # The deadline is 5 s; the runner then records the end while the abandoned render still
    # spins in its thread (which slows the main thread down): well under the 60 s it took before.
    assert time.monotonic() - started < 25
    assert code == 1
    execution, steps = load(db, seeded.execution_id)
    assert execution.status == "timed_out"
    assert execution.error == "workflow timed out after 5s while rendering step 'spin'"
    assert [(s.step_id, s.status) for s in steps] == [("hello", "succeeded"), ("spin", "timed_out")]


def test_an_endless_if_template_times_out_at_the_workflow_deadline(db) -> None:
    seeded = seed(db, workflow("if"))
    process = start_runner(db, seeded)
    started = time.monotonic()
    try:
        process.wait(timeout=40)
    finally:
        process.kill()
        process.communicate()
    # The deadline is 5 s; the runner then records the end while the abandoned render still
    # spins in its thread (which slows the main thread down): well under the 60 s it took before.
    assert time.monotonic() - started < 25
    execution, _ = load(db, seeded.execution_id)
    assert execution.status == "timed_out"


def test_sigterm_stops_a_runner_busy_rendering_a_template(db) -> None:
    seeded = seed(db, workflow("with").replace("timeout_seconds: 5", "timeout_seconds: 600"))
    process = start_runner(db, seeded)
    try:
        wait_until_hello_done(db, seeded.execution_id, process)
        time.sleep(0.5)  # well inside the endless render
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=25)
        elapsed = time.monotonic() - signalled
    finally:
        process.kill()
        process.communicate()
    # Well inside a pod's 30 s termination grace period (before the fix: still running after 42 s);
    # usually about a second, more on a loaded machine.
    assert elapsed < 12, elapsed
    assert code == 143
    execution, _ = load(db, seeded.execution_id)
    assert execution.status == "timed_out"
    assert execution.error.startswith("stopped by SIGTERM")
