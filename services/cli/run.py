"""`wfctl run`: trigger a workflow now."""

from __future__ import annotations

import typer

from services.cli.context import database, settings, work_queue
from services.cli.jsonarg import read_json_argument
from services.cli.render import OUTPUT_OPTION, OutputFormat, emit_object
from services.core.db.models import ExecutionStatus
from services.core.db.session import session_factory
from services.core.executions import execution_detail, get_execution
from services.core.inputs import parse_input
from services.core.workflows import get_workflow
from services.dispatcher.triggers import trigger_manual_run, wait_budget_seconds, wait_for_execution

# Time allowed for the queue and the spawner on top of the workflow's own deadline.
WAIT_MARGIN_SECONDS = 120


def run_workflow(
    workflow: str,
    input_json: str | None = typer.Option(
        None, "--input", help="JSON object given to the run; @FILE reads a file, - reads stdin"
    ),
    wait: bool = typer.Option(
        False, "--wait", help="Wait for the outcome, retries included; exit 1 unless it succeeded"
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Trigger a manual run of WORKFLOW."""
    payload = parse_input(read_json_argument(input_json, "input"))
    with database() as session:
        message = trigger_manual_run(session, work_queue(), workflow, payload)
        deadline = wait_budget_seconds(get_workflow(session, workflow).definition, WAIT_MARGIN_SECONDS)
    if not wait:
        typer.echo(f"run of {workflow} enqueued ({message.dedup_key})")
        return
    typer.echo(f"run of {workflow} enqueued ({message.dedup_key}); waiting…", err=True)
    maker = session_factory(settings().require_database_url())
    finished = wait_for_execution(maker, message.dedup_key, deadline)
    if finished is None:
        typer.echo(f"error: run did not finish within {deadline:.0f}s", err=True)
        raise typer.Exit(1)
    with database() as session:
        execution = get_execution(session, finished.id)
        assert execution is not None
        emit_object(execution_detail(execution), output)
        succeeded = execution.status == ExecutionStatus.SUCCEEDED
    if not succeeded:
        raise typer.Exit(1)
