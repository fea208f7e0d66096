"""`wfctl executions`: the run history."""

from __future__ import annotations

import typer

from services.cli.context import database
from services.cli.render import OUTPUT_OPTION, OutputFormat, emit_object, emit_rows
from services.core.db.models import ExecutionStatus
from services.core.errors import NotFoundError, UserError
from services.core.executions import (
    execution_detail,
    execution_summary,
    find_execution,
    list_executions,
)
from services.core.workflows import get_workflow

app = typer.Typer(help="Workflow runs and their steps.", no_args_is_help=True)

MAX_LIMIT = 10_000

COLUMNS = ["id", "workflow", "trigger", "status", "attempt", "scheduled_for", "created_at", "duration_seconds"]


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
    with database() as session:
        workflow_id = get_workflow(session, workflow).id if workflow else None
        rows = [execution_summary(e) for e in list_executions(session, workflow_id, status, limit)]
    emit_rows(rows, COLUMNS, output)


@app.command("show")
def show(execution_id: str, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Show one execution with its steps."""
    with database() as session:
        execution = find_execution(session, execution_id)
        if execution is None:
            raise NotFoundError("execution", f"no execution with id {execution_id!r}")
        data = execution_detail(execution)
    emit_object(data, output)
