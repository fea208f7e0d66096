"""Run control through `wfctl`: pools, re-run requests, and validation (one line, exit 2,
nothing changed)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from services.core.db.models import Execution, ExecutionStatus, Pool, StepRun, Workflow
from services.core.db.session import session_factory
from services.core.executions import finish_execution, insert_execution
from services.core.messages import parse_message
from tests.spawner.conftest import manual_message

WORKFLOW = """
name: three
{extra}
steps:
  - {{id: s1, type: log, with: {{message: one}}}}
  - {{id: s2, type: log, with: {{message: two}}}}
  - {{id: s3, type: log, with: {{message: three}}}}
"""


def apply(wfctl, tmp_path: Path, extra: str = ""):
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW.format(extra=extra))
    return wfctl("workflows", "apply", "-f", str(path))


def count(db: str, model) -> int:
    with session_factory(db)() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_pools_set_and_list(db, wfctl):
    assert wfctl("pools", "set", "api", "--slots", "3").out.strip() == "pool api created (3 slots)"
    assert wfctl("pools", "set", "api", "--slots", "1").out.strip() == "pool api updated (1 slot)"
    [pool] = wfctl("pools", "list", "--output", "json").json()
    assert (pool["name"], pool["slots"], pool["in_use"], pool["queued"]) == ("api", 1, 0, 0)


def test_bad_pools_and_limits_are_refused_and_change_nothing(db, wfctl, tmp_path):
    result = wfctl("pools", "set", "api", "--slots", "0")
    assert (result.code, result.err.strip()) == (2, "error: slots: must be between 1 and 10000, got 0")
    assert count(db, Pool) == 0

    result = apply(wfctl, tmp_path, "pool: nope")
    assert result.code == 2
    assert result.err.strip() == "error: pool: no pool named 'nope' (create it with: wfctl pools set nope --slots N)"
    result = apply(wfctl, tmp_path, "concurrency: {limit: 0}")
    assert (result.code, result.err.strip()) == (2, "error: concurrency.limit: 0 is less than the minimum of 1")
    assert count(db, Workflow) == 0

    wfctl("pools", "set", "api", "--slots", "2")
    assert apply(wfctl, tmp_path, "pool: api\nconcurrency: {limit: 1}").code == 0


def test_a_step_retry_naming_an_unknown_outcome_is_refused(db, wfctl, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nsteps:\n  - {id: s, type: log, with: {message: x}, retry: {on: [sometimes]}}\n")
    result = wfctl("workflows", "apply", "-f", str(path))
    assert result.code == 2 and result.err.startswith("error: steps[0].retry.on[0]: 'sometimes' is not one of")
    assert count(db, Workflow) == 0


def finished_run(db: str, statuses: dict[str, str], status: str = ExecutionStatus.FAILED) -> Execution:
    with session_factory(db)() as session:
        workflow = session.scalar(select(Workflow).where(Workflow.name == "three"))
        execution, _ = insert_execution(session, manual_message(workflow, {"who": "original"}))
        for position, (step_id, step_status) in enumerate(statuses.items()):
            session.add(StepRun(
                execution_id=execution.id, step_id=step_id, position=position, type="log",
                status=step_status, output=step_id,
            ))
        if status != ExecutionStatus.PENDING:
            finish_execution(session, execution.id, ExecutionStatus(status), error="boom")
        session.commit()
        return execution


def test_rerun_enqueues_a_new_execution_request(db, queues, wfctl, tmp_path):
    assert apply(wfctl, tmp_path).code == 0
    original = finished_run(db, {"s1": "succeeded", "s2": "succeeded", "s3": "failed"})
    result = wfctl("executions", "rerun", str(original.id), "--from-step", "s3", "--input", '{"who": "again"}')
    assert result.code == 0, result.err
    assert f"re-run of {original.id} from step s3 enqueued (rerun:" in result.out
    [raw] = queues.drain()
    message = parse_message(raw["Body"])
    assert (message.trigger, message.rerun_of, message.from_step) == ("rerun", original.id, "s3")
    assert message.dedup_key.startswith("rerun:") and message.input == {"who": "again"}

    whole = wfctl("executions", "rerun", str(original.id))
    assert whole.code == 0
    [raw] = queues.drain()
    message = parse_message(raw["Body"])
    assert (message.from_step, message.input) == (None, {"who": "original"})
    assert json.loads(raw["Body"])["rerun_of"] == str(original.id)


def test_bad_reruns_are_refused_and_enqueue_nothing(db, queues, wfctl, tmp_path):
    assert apply(wfctl, tmp_path).code == 0
    original = finished_run(db, {"s1": "succeeded", "s2": "failed"})
    result = wfctl("executions", "rerun", str(original.id), "--from-step", "nope")
    assert (result.code, result.err.strip()) == (
        2, "error: from-step: workflow three has no step 'nope' (steps: s1, s2, s3)"
    )
    result = wfctl("executions", "rerun", str(original.id), "--from-step", "s3")
    assert result.code == 2
    assert result.err.strip() == (
        f"error: from-step: step 's2' before 's3' has no output to reuse in execution {original.id} (failed); "
        "re-run from 's2' or earlier"
    )
    running = finished_run(db, {}, status=ExecutionStatus.PENDING)
    result = wfctl("executions", "rerun", str(running.id))
    assert (result.code, result.err.strip()) == (
        2, f"error: execution: {running.id} is still pending; only a finished run can be re-run"
    )
    result = wfctl("executions", "rerun", str(original.id), "--input", "[1]")
    assert (result.code, result.err.strip()) == (2, "error: input: must be a JSON object, got list")
    assert queues.drain() == []
