"""`wfctl run`: trigger a workflow now."""

from __future__ import annotations

import time
from typing import Any

import typer

from services.cli.context import database, settings, work_queue
from services.cli.jsonarg import read_json_argument
from services.cli.remote import RemoteApi, remote_api
from services.cli.render import OUTPUT_OPTION, OutputFormat, emit_object
from services.core.audit import cli_actor
from services.core.db.models import TERMINAL_STATUSES, ExecutionStatus
from services.core.db.session import session_factory
from services.core.executions import get_execution
from services.core.inputs import parse_input
from services.core.views import execution_detail
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
    if (api := remote_api()) is not None:
        _run_remote(api, workflow, payload, wait, output)
        return
    with database() as session:
        message = trigger_manual_run(session, work_queue(), workflow, payload, actor=cli_actor())
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


def _run_remote(api: RemoteApi, workflow: str, payload: dict[str, Any], wait: bool, output: OutputFormat) -> None:
    """`wfctl run` through the API; `--wait` polls the run by its dedup key, following retries."""
    definition = api.get(f"/workflows/{workflow}")["definition"]
    result = api.post(f"/workflows/{workflow}/run", {"input": payload})
    key = result["dedup_key"]
    if not wait:
        typer.echo(f"run of {workflow} enqueued ({key})")
        return
    typer.echo(f"run of {workflow} enqueued ({key}); waiting…", err=True)
    deadline = time.monotonic() + wait_budget_seconds(definition, WAIT_MARGIN_SECONDS)
    while time.monotonic() < deadline:
        found = api.get("/executions", dedup_key=key, limit=1)["items"]
        if found and found[0]["status"] in TERMINAL_STATUSES:
            detail = api.get(f"/executions/{found[0]['id']}")
            if _retries_left(definition, detail):
                key = f"retry:{detail['id']}:{detail['attempt'] + 1}"
                continue
            emit_object(detail, output)
            if detail["status"] != ExecutionStatus.SUCCEEDED:
                raise typer.Exit(1)
            return
        time.sleep(1.0)
    typer.echo("error: run did not finish in time", err=True)
    raise typer.Exit(1)


def _retries_left(definition: dict[str, Any], detail: dict[str, Any]) -> bool:
    """The platform runs another attempt (the rule of `finish_execution`)."""
    from services.core.executions import RETRYABLE_STATUSES
    from services.core.workflows import DEFAULT_RETRY

    retry = {**DEFAULT_RETRY, **(definition.get("retry") or {})}
    return detail["status"] in RETRYABLE_STATUSES and int(detail["attempt"]) < int(retry["max_attempts"])
