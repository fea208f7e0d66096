"""Per-step retry, the Idempotency-Key, and re-running from a step: the real runner against
Postgres and a counting HTTP server on 127.0.0.1."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import select

from services.core.db.models import Execution, ExecutionStatus, Trigger
from services.core.db.session import session_factory
from services.core.executions import insert_execution, transition
from services.core.messages import RunMessage, rerun_dedup_key, retry_dedup_key
from services.runtime.runner import execute
from tests.runtime.conftest import Seeded, load, runner_env, seed


def flaky_workflow(url: str, on: str = "[http_5xx]", attempts: int = 3, timeout: int = 60, backoff: float = 0.05) -> str:
    return f"""
name: flaky
timeout_seconds: {timeout}
steps:
  - id: call
    type: http
    retry: {{max_attempts: {attempts}, backoff_seconds: {backoff}, backoff_multiplier: 2, on: {on}}}
    with: {{method: POST, url: "{url}", json: {{hello: world}}}}
"""


def test_a_step_that_fails_twice_then_succeeds_is_one_execution_with_three_attempts(db, counting_server, wfctl):
    code, execution, steps = _run(db, flaky_workflow(f"{counting_server.url}/fail/2/a"))
    assert (code, execution.status) == (0, "succeeded")
    with session_factory(db)() as session:
        assert session.scalar(select(Execution.id).where(Execution.id != execution.id)) is None  # one execution
    [step] = steps
    assert (step.status, step.attempts) == ("succeeded", 3)
    assert [e["attempt"] for e in step.attempt_errors] == [1, 2]
    assert {e["kind"] for e in step.attempt_errors} == {"http_5xx"}
    assert "returned 503" in step.attempt_errors[0]["error"]
    assert step.output["body"] == {"name": "a", "hits": 3}
    # The same Idempotency-Key on every attempt, so the server can tell they are one request.
    keys = [key for path, key, _ in counting_server.requests]
    assert len(keys) == 3 and keys[0] and len(set(keys)) == 1
    shown = wfctl("executions", "show", str(execution.id), "--output", "json").json()
    assert shown["steps"][0]["attempts"] == 3 and len(shown["steps"][0]["attempt_errors"]) == 2


def test_a_failure_the_retry_does_not_name_is_not_retried(db, counting_server):
    code, execution, steps = _run(db, flaky_workflow(f"{counting_server.url}/fail/2/b", on="[http_429]"))
    assert (code, execution.status) == (1, "failed")
    [step] = steps
    assert (step.status, step.attempts) == ("failed", 1)
    assert [e["kind"] for e in step.attempt_errors] == ["http_5xx"]
    assert counting_server.count("/fail/2/b") == 1


def test_the_last_attempt_fails_the_step_with_every_error_kept(db, counting_server):
    code, execution, steps = _run(db, flaky_workflow(f"{counting_server.url}/fail/5/c", attempts=3))
    assert execution.status == "failed" and "returned 503" in execution.error
    [step] = steps
    assert (step.status, step.attempts, len(step.attempt_errors)) == ("failed", 3, 3)
    assert counting_server.count("/fail/5/c") == 3


def test_the_workflow_timeout_bounds_the_retries(db, counting_server):
    started = time.monotonic()
    workflow = flaky_workflow(f"{counting_server.url}/fail/9/d", attempts=10, timeout=2, backoff=5)
    code, execution, steps = _run(db, workflow)
    assert time.monotonic() - started < 5  # ten attempts 5 s apart would take 45 s
    assert execution.status == "failed"
    assert "no time left for attempt 2" in execution.error
    assert counting_server.count("/fail/9/d") == 1


def test_the_idempotency_key_is_stable_across_retries_of_one_fire_time_and_differs_per_step(db, counting_server):
    yaml = f"""
name: keyed
steps:
  - {{id: first, type: http, with: {{url: "{counting_server.url}/count/first"}}}}
  - {{id: second, type: http, with: {{url: "{counting_server.url}/count/second"}}}}
"""
    seeded = seed(db, yaml)
    fire = f"schedule:{uuid.uuid4()}:2030-01-01T00:00:00Z"
    with session_factory(db)() as session, session.begin():
        first = session.get(Execution, seeded.execution_id)
        first.dedup_key = fire
    assert execute(runner_env(db, seeded)) == 0
    retry = _insert(db, RunMessage(
        trigger=Trigger.RETRY, dedup_key=retry_dedup_key(seeded.execution_id, 2), workflow_id=seeded.workflow_id,
        attempt=2, retry_of=seeded.execution_id,
    ))
    assert execute(runner_env(db, Seeded(seeded.workflow_id, retry))) == 0
    other = seed(db, yaml)  # another fire time / request
    assert execute(runner_env(db, other)) == 0
    keys: dict[str, list[str | None]] = {}
    for path, key, _ in counting_server.requests:
        keys.setdefault(path, []).append(key)
    assert keys["/count/first"][0] == keys["/count/first"][1] != keys["/count/first"][2]
    assert keys["/count/first"][0] != keys["/count/second"][0]


FOUR_STEPS = """
name: four
steps:
  - {{id: s1, type: http, with: {{url: "{url}/big/one"}}}}
  - {{id: s2, type: http, with: {{url: "{url}/count/two"}}}}
  - id: s3
    type: http
    with:
      method: POST
      url: "{url}/echo"
      json: {{one: "{{{{ steps.s1.output.body.name }}}}", size: "{{{{ steps.s1.output.body.data | length }}}}",
             two: "{{{{ steps.s2.output.body.hits }}}}", who: "{{{{ input.who }}}}"}}
  - {{id: s4, type: log, with: {{message: "done {{{{ steps.s3.output.body.got.one }}}}"}}}}
"""


def test_rerun_from_step_3_of_4_reuses_the_full_outputs_of_steps_1_and_2(db, counting_server):
    code, original, steps = _run(db, FOUR_STEPS.format(url=counting_server.url), {"who": "first"})
    assert (code, original.status) == (0, "succeeded"), original.error
    s1 = next(s for s in steps if s.step_id == "s1")
    assert s1.output["truncated"] is True  # over 64 KiB: the row shows a preview…
    assert s1.full_output["body"]["name"] == "one"  # …and keeps the whole value for re-runs

    rerun = _insert(db, RunMessage(
        trigger=Trigger.RERUN, dedup_key=rerun_dedup_key(uuid.uuid4()), workflow_id=original.workflow_id,
        input={"who": "second"}, rerun_of=original.id, from_step="s3",
    ))
    assert execute(runner_env(db, Seeded(original.workflow_id, rerun))) == 0
    execution, steps = load(db, rerun)
    assert execution.status == "succeeded" and execution.trigger == "rerun" and execution.rerun_of == original.id
    assert [(s.step_id, s.status) for s in steps] == [
        ("s1", "reused"), ("s2", "reused"), ("s3", "succeeded"), ("s4", "succeeded"),
    ]
    assert [s.attempts for s in steps[:2]] == [0, 0]
    assert counting_server.count("/big/one") == 1 and counting_server.count("/count/two") == 1  # not called again
    echoes = [body for path, _, body in counting_server.requests if path == "/echo"]
    assert echoes[-1] == {"one": "one", "size": 100000, "two": 1, "who": "second"}
    assert steps[3].output == "done one"


def test_rerun_from_a_step_whose_predecessors_did_not_succeed_fails_before_running(db, counting_server):
    yaml = f"""
name: broken
steps:
  - {{id: s1, type: fail, with: {{message: boom}}}}
  - {{id: s2, type: http, with: {{url: "{counting_server.url}/count/two"}}}}
"""
    _, original, _ = _run(db, yaml)
    rerun = _insert(db, RunMessage(
        trigger=Trigger.RERUN, dedup_key=rerun_dedup_key(uuid.uuid4()), workflow_id=original.workflow_id,
        rerun_of=original.id, from_step="s2",
    ))
    assert execute(runner_env(db, Seeded(original.workflow_id, rerun))) == 1
    execution, steps = load(db, rerun)
    assert execution.status == "failed" and "step 's1' has no reusable output" in execution.error
    assert steps == [] and counting_server.count("/count/two") == 0


def _run(db: str, yaml: str, input: dict | None = None):
    seeded = seed(db, yaml, input)
    code = execute(runner_env(db, seeded))
    execution, steps = load(db, seeded.execution_id)
    return code, execution, steps


def _insert(db: str, message: RunMessage) -> uuid.UUID:
    with session_factory(db)() as session:
        execution, _ = insert_execution(session, message)
        transition(session, execution.id, [ExecutionStatus.PENDING], ExecutionStatus.STARTING)
        session.commit()
        return execution.id
