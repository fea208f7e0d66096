"""`wfctl executions`: the run history, and run control (cancel, re-run)."""

from __future__ import annotations

import typer

from services.cli.context import database, work_queue
from services.cli.jsonarg import read_json_argument
from services.cli.remote import remote_api
from services.cli.render import OUTPUT_OPTION, OutputFormat, emit_object, emit_rows
from services.core.audit import cli_actor
from services.core.db.models import ExecutionStatus
from services.core.errors import NotFoundError, UserError
from services.core.executions import cancel_execution, find_execution, list_executions
from services.core.inputs import parse_input
from services.core.views import execution_detail, execution_summary
from services.core.workflows import get_workflow

app = typer.Typer(help="Workflow runs and their steps.", no_args_is_help=True)

MAX_LIMIT = 10_000
API_PAGE_SIZE = 200  # the API's largest page; longer lists are read a page at a time

COLUMNS = [
    "id", "workflow", "trigger", "status", "attempt", "scheduled_for", "created_at", "duration_seconds", "reason",
]


@app.command("list")
def list_(
    workflow: str | None = typer.Option(None, "--workflow", help="Only this workflow"),
    status: str | None = typer.Option(None, "--status", help="Only this status"),
    limit: int = typer.Option(50, "--limit", help="At most this many, newest first"),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """List executions, newest first."""
    if not 1 <= limit <= MAX_LIMIT:
        raise UserError("limit", f"must be between 1 and {MAX_LIMIT}")
    if status is not None and status not in {s.value for s in ExecutionStatus}:
        raise UserError("status", f"{status!r} is not one of {', '.join(s.value for s in ExecutionStatus)}")
    if (api := remote_api()) is not None:
        rows = api.pages("/executions", limit, API_PAGE_SIZE, workflow=workflow, status=status)
        emit_rows(rows, COLUMNS, output)
        return
    with database() as session:
        workflow_id = get_workflow(session, workflow).id if workflow else None
        rows = [execution_summary(e) for e in list_executions(session, workflow_id, status, limit)]
    emit_rows(rows, COLUMNS, output)


@app.command("show")
def show(execution_id: str, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Show one execution with its steps."""
    if (api := remote_api()) is not None:
        emit_object(api.get(f"/executions/{execution_id}"), output)
        return
    with database() as session:
        execution = find_execution(session, execution_id)
        if execution is None:
            raise NotFoundError("execution", f"no execution with id {execution_id!r}")
        data = execution_detail(execution)
    emit_object(data, output)


@app.command("cancel")
def cancel(execution_id: str) -> None:
    """Cancel a run that has not finished (a running one is stopped within seconds)."""
    if (api := remote_api()) is not None:
        typer.echo(api.post(f"/executions/{execution_id}/cancel")["message"])
        return
    with database() as session:
        execution = find_execution(session, execution_id)
        if execution is None:
            raise NotFoundError("execution", f"no execution with id {execution_id!r}")
        outcome = cancel_execution(session, execution.id, cli_actor())
    if outcome.action == "cancelled":
        typer.echo(f"execution {outcome.execution_id} cancelled")
    elif outcome.action == "requested":
        typer.echo(f"execution {outcome.execution_id} is being stopped (cancel requested by {outcome.requested_by})")
    elif outcome.status == ExecutionStatus.CANCELLED:
        typer.echo(f"execution {outcome.execution_id} was already cancelled")
    else:
        typer.echo(f"execution {outcome.execution_id} is already being stopped (by {outcome.requested_by})")


@app.command("rerun")
def rerun(
    execution_id: str,
    from_step: str | None = typer.Option(
        None, "--from-step", help="Start at this step; earlier steps reuse their recorded outputs"
    ),
    input_json: str | None = typer.Option(
        None, "--input", help="JSON object instead of the original input; @FILE reads a file, - reads stdin"
    ),
) -> None:
    """Re-run a finished execution as a new one, whole or from a step."""
    from services.dispatcher.triggers import trigger_rerun

    payload = parse_input(read_json_argument(input_json, "input")) if input_json is not None else None
    if (api := remote_api()) is not None:
        result = api.post(f"/executions/{execution_id}/rerun", {"from_step": from_step, "input": payload})
        typer.echo(f"{result['message']} ({result['dedup_key']})")
        return
    with database() as session:
        execution = find_execution(session, execution_id)
        if execution is None:
            raise NotFoundError("execution", f"no execution with id {execution_id!r}")
        message = trigger_rerun(session, work_queue(), execution, from_step, payload, actor=cli_actor())
    where = f" from step {from_step}" if from_step else ""
    typer.echo(f"re-run of {execution.id}{where} enqueued ({message.dedup_key})")
