"""The runner against a real Postgres: steps, templates, records, claims, bounds, failures."""

from __future__ import annotations

import json
import logging
import time

import pytest
from sqlalchemy import update

from services.core.db.models import Workflow
from services.core.db.session import session_factory
from services.runtime.runner import execute
from services.runtime.steps.registry import StepRegistry
from tests.runtime.conftest import load, runner_env, seed

PIPELINE = """
name: pipeline
steps:
  - {id: start, type: log, with: {message: "hello {{ input.who }} (attempt {{ execution.attempt }}, {{ workflow.name }})"}}
  - {id: numbers, type: transform, with: {expression: "input.values"}}
  - {id: count, type: transform, with: {expression: "length(steps.numbers.output)"}}
  - {id: typed, type: log, with: {message: {n: "{{ steps.count.output }}", again: "{{ steps.numbers.output }}"}}}
  - {id: never, type: fail, if: "{{ steps.count.output > 10 }}", with: {message: "too many"}}
  - {id: nap, type: sleep, with: {seconds: "{{ 0.01 }}"}}
  - {id: report, type: log, if: "steps.count.output > 0", with: {message: "{{ steps.count.output }} values"}}
"""


def test_pipeline_runs_every_step_type_and_records_each(run_workflow) -> None:
    code, execution, steps = run_workflow(PIPELINE, input={"who": "ada", "values": [1, 2, 3]})
    assert code == 0
    assert execution.status == "succeeded", execution.error
    assert execution.started_at and execution.finished_at and execution.error is None
    assert execution.next_retry_at is None
    by_id = {s.step_id: s for s in steps}
    assert [s.step_id for s in steps] == ["start", "numbers", "count", "typed", "never", "nap", "report"]
    assert by_id["start"].output == "hello ada (attempt 1, pipeline)"
    assert by_id["count"].output == 3
    assert by_id["typed"].output == {"n": 3, "again": [1, 2, 3]}
    assert by_id["never"].status == "skipped" and by_id["never"].output is None
    assert by_id["nap"].status == "succeeded" and by_id["nap"].output is None
    assert all(s.started_at and s.finished_at for s in steps)
    # The execution's output is the last step's output.
    assert execution.output == "3 values"


def test_fail_step_fails_the_run_and_stops(run_workflow) -> None:
    code, execution, steps = run_workflow(
        """
name: failing
steps:
  - {id: one, type: log, with: {message: "ok"}}
  - {id: boom, type: fail, with: {message: "upstream said no"}}
  - {id: after, type: log, with: {message: "never"}}
"""
    )
    assert code == 1
    assert execution.status == "failed"
    assert execution.error == "step 'boom' failed: upstream said no"
    assert [(s.step_id, s.status) for s in steps] == [("one", "succeeded"), ("boom", "failed")]
    assert steps[1].error == "upstream said no"


def test_undefined_variable_fails_the_step_naming_it(run_workflow) -> None:
    code, execution, steps = run_workflow(
        """
name: typo
steps:
  - {id: count, type: transform, with: {expression: "`3`"}}
  - {id: report, type: log, with: {message: "{{ steps.cuont.output }} items"}}
"""
    )
    assert code == 1 and execution.status == "failed"
    assert execution.error == "step 'report' failed: template error in with.message: steps.cuont is undefined"
    assert steps[-1].status == "failed"


def test_bad_jmespath_and_bad_sleep_are_step_failures(run_workflow) -> None:
    code, execution, _ = run_workflow("""
name: badexpr
steps:
  - {id: t, type: transform, with: {expression: "foo[?"}}
""")
    assert code == 1 and "JMESPath expression" in execution.error and "\n" not in execution.error
    code, execution, _ = run_workflow("""
name: badsleep
steps:
  - {id: s, type: sleep, with: {seconds: "soon"}}
""")
    assert code == 1 and execution.error == "step 's' failed: with.seconds must be a number, got 'soon'"


def test_duplicate_job_exits_without_running(db) -> None:
    seeded = seed(db, """
name: once
steps:
  - {id: only, type: log, with: {message: "ran"}}
""")
    env = runner_env(db, seeded)
    assert execute(env) == 0
    first, steps = load(db, seeded.execution_id)
    assert execute(env) == 0
    second, steps_again = load(db, seeded.execution_id)
    assert first.status == second.status == "succeeded"
    assert first.finished_at == second.finished_at
    assert [(s.id, s.finished_at) for s in steps] == [(s.id, s.finished_at) for s in steps_again]


def test_terminal_or_running_execution_is_not_claimed(db) -> None:
    for status in ("running", "cancelled", "failed"):
        seeded = seed(db, "name: claimed\nsteps: [{id: a, type: log, with: {message: x}}]", status=status)
        assert execute(runner_env(db, seeded)) == 0
        execution, steps = load(db, seeded.execution_id)
        assert execution.status == status and steps == []


def test_workflow_input_env_wins_over_stored_input(run_workflow) -> None:
    workflow = "name: inputs\nsteps: [{id: a, type: log, with: {message: '{{ input.who }}'}}]"
    _, execution, _ = run_workflow(workflow, input={"who": "stored"})
    assert execution.output == "stored"
    _, execution, _ = run_workflow(workflow, input={"who": "stored"}, WORKFLOW_INPUT='{"who": "env"}')
    assert execution.output == "env"


def test_oversized_or_malformed_input_fails_with_a_clear_message(run_workflow) -> None:
    workflow = "name: big\nsteps: [{id: a, type: log, with: {message: x}}]"
    code, execution, steps = run_workflow(workflow, WORKFLOW_INPUT=json.dumps({"a": "x" * 300_000}))
    assert code == 1 and execution.status == "failed" and steps == []
    assert execution.error.startswith("cannot run: WORKFLOW_INPUT is ") and "256 KiB" in execution.error
    code, execution, _ = run_workflow(workflow, WORKFLOW_INPUT="[1, 2")
    assert execution.error.startswith("cannot run: WORKFLOW_INPUT is not valid JSON")
    code, execution, _ = run_workflow(workflow, input={"a": "x" * 300_000})
    assert execution.status == "failed" and execution.error.startswith("cannot run: input is ")


def test_malformed_stored_workflow_fails_the_execution(db) -> None:
    seeded = seed(db, "name: broken\nsteps: [{id: a, type: log, with: {message: x}}]")
    with session_factory(db)() as session, session.begin():
        session.execute(update(Workflow).values(definition={"name": "broken", "steps": [{"type": "log"}]}))
    assert execute(runner_env(db, seeded)) == 1
    execution, steps = load(db, seeded.execution_id)
    assert execution.status == "failed" and steps == []
    assert execution.error == "cannot run: workflow definition is malformed: steps[0].id: must be a non-empty string"


def test_unknown_step_type_and_wrong_workflow_id_fail_before_any_step(db, run_workflow) -> None:
    code, execution, steps = run_workflow("name: unknown\nsteps: [{id: a, type: teleport}]")
    assert code == 1 and steps == []
    assert execution.error.startswith("cannot run: steps[0].type: unknown step type 'teleport'")
    seeded = seed(db, "name: mismatch\nsteps: [{id: a, type: log, with: {message: x}}]")
    env = {**runner_env(db, seeded), "WORKFLOW_ID": "00000000-0000-0000-0000-000000000000"}
    assert execute(env) == 1
    execution, _ = load(db, seeded.execution_id)
    assert execution.status == "failed" and "does not match" in execution.error


def test_missing_environment_is_a_config_error(wfctl, monkeypatch) -> None:
    monkeypatch.delenv("EXECUTION_ID", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        result = wfctl("execute")
    finally:  # the runner configures process-wide logging; give pytest its handlers back
        root.handlers[:] = handlers
        root.setLevel(level)
    assert result.code == 2
    assert result.err.strip().endswith("error: EXECUTION_ID is not set (the execution record to run)")


def test_step_timeout_fails_the_step_quickly(run_workflow) -> None:
    started = time.monotonic()
    code, execution, steps = run_workflow("""
name: slowstep
steps:
  - {id: nap, type: sleep, timeout_seconds: 0.3, with: {seconds: 30}}
""")
    assert time.monotonic() - started < 5
    assert code == 1 and execution.status == "failed"
    assert execution.error == "step 'nap' timed out after 0.3s"
    assert steps[0].status == "timed_out"


@pytest.mark.parametrize("seconds", ["30", "1e10", "'inf'"])
def test_workflow_deadline_times_out_the_execution(run_workflow, seconds: str) -> None:
    # A sleep longer than the platform's timer can count (1e10 s, inf) waits for the deadline too.
    code, execution, steps = run_workflow(f"""
name: slowflow
timeout_seconds: 1
steps:
  - {{id: nap, type: sleep, with: {{seconds: {seconds}}}}}
""")
    assert code == 1 and execution.status == "timed_out"
    assert execution.error == "workflow timed out after 1s during step 'nap'"
    assert steps[0].status == "timed_out"


def test_large_output_is_truncated_with_a_marker(run_workflow) -> None:
    code, execution, steps = run_workflow(
        "name: bigout\nsteps: [{id: t, type: transform, with: {expression: input.blob}}]",
        input={"blob": "y" * 100_000},
    )
    assert code == 0
    assert steps[0].output["truncated"] is True and steps[0].output["size_bytes"] > 100_000
    assert execution.output["truncated"] is True


class Shout:
    """A custom step, as a plugin package would provide it."""

    def run(self, params, context):
        return str(params["text"]).upper() + "!"


def test_custom_step_type_from_an_entry_point(run_workflow) -> None:
    class EntryPoint:
        def load(self):
            return Shout

    registry = StepRegistry(discover=lambda: {"shout": EntryPoint()})
    code, execution, steps = run_workflow(
        "name: custom\nsteps: [{id: s, type: shout, with: {text: '{{ input.w }}'}}]", input={"w": "hey"}, registry=registry
    )
    assert code == 0 and execution.output == "HEY!"


def test_example_custom_step_package_through_its_entry_point(run_workflow, monkeypatch) -> None:
    """The example package's entry point, as importlib.metadata would report it once installed."""
    import sys
    import tomllib
    from importlib.metadata import EntryPoint
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "custom-step"
    monkeypatch.syspath_prepend(str(example))
    declared = tomllib.loads((example / "pyproject.toml").read_text())["project"]["entry-points"]["workflow_runtime.steps"]
    entry_points = {name: EntryPoint(name, value, "workflow_runtime.steps") for name, value in declared.items()}
    monkeypatch.setattr("services.runtime.steps.registry.discover_entry_points", lambda: entry_points)
    code, execution, steps = run_workflow(
        "name: slugs\nsteps:\n  - {id: slug, type: slugify, with: {text: '{{ input.title }}'}}\n"
        "  - {id: bad, type: slugify, with: {text: ''}}",
        input={"title": "Hello, World!"},
    )
    sys.modules.pop("wfr_custom_step.slugify", None)
    assert steps[0].output == {"slug": "hello-world"}
    assert code == 1 and execution.error == "step 'bad' failed: ValueError: with.text must be a non-empty string"


def test_an_unexpected_runner_error_still_ends_the_execution(run_workflow) -> None:
    """A step output the runner cannot handle (here: nested deeper than Python's recursion limit)
    fails the execution instead of crashing the runner and leaving it `running`."""

    def deep(params, context):
        value: list = []
        for _ in range(5000):
            value = [value]
        return value

    class EntryPoint:
        def load(self):
            return deep

    registry = StepRegistry(discover=lambda: {"deep": EntryPoint()})
    code, execution, steps = run_workflow("name: deep\nsteps: [{id: d, type: deep}]", registry=registry)
    assert code == 1 and execution.status == "failed"
    # The output is made storable in the step's interruptible worker, so the step fails with it.
    assert execution.error.startswith("step 'd' failed: RecursionError") and "\n" not in execution.error
