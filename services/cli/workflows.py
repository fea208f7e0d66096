"""`wfctl workflows`: apply, list and show workflow definitions."""

from __future__ import annotations

from pathlib import Path

import typer

from services.cli.context import database
from services.cli.remote import remote_api
from services.cli.render import OUTPUT_OPTION, OutputFormat, emit_object, emit_rows, warn_unknown_channels
from services.core.audit import cli_actor
from services.core.documents import read_file
from services.core.workflows import (
    apply_workflow,
    check_step_types,
    get_workflow,
    list_workflows,
    parse_workflow,
)

ALLOW_UNKNOWN_HELP = "Accept step types this installation does not know (the runner image provides them)"

app = typer.Typer(help="Workflow definitions (YAML or JSON).", no_args_is_help=True)

LIST_COLUMNS = ["name", "version", "steps", "timeout_seconds", "updated_at"]


@app.command("apply")
def apply(
    file: Path = typer.Option(..., "--file", "-f", help="Workflow file (YAML or JSON), or - for stdin"),
    allow_unknown_step_types: bool = typer.Option(False, "--allow-unknown-step-types", help=ALLOW_UNKNOWN_HELP),
) -> None:
    """Create or update a workflow by its name."""
    definition = parse_workflow(read_file(file), source=str(file))
    if not allow_unknown_step_types:
        from services.runtime.steps.registry import known_step_types

        check_step_types(definition, known_step_types())
    with database() as session:
        workflow, created = apply_workflow(session, definition, actor=cli_actor())
        typer.echo(f"workflow {workflow.name} {'created' if created else 'applied'} (version {workflow.version})")
        warn_unknown_channels(session, definition, f"workflow {workflow.name}")


@app.command("list")
def list_(output: OutputFormat = OUTPUT_OPTION) -> None:
    """List workflows."""
    if (api := remote_api()) is not None:
        emit_rows(api.get("/workflows")["items"], LIST_COLUMNS, output)
        return
    with database() as session:
        rows = [
            {
                "id": w.id,
                "name": w.name,
                "version": w.version,
                "steps": len(w.definition["steps"]),
                "timeout_seconds": w.timeout_seconds,
                "updated_at": w.updated_at,
            }
            for w in list_workflows(session)
        ]
    emit_rows(rows, LIST_COLUMNS, output)


@app.command("show")
def show(name: str, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Show one workflow with its definition."""
    if (api := remote_api()) is not None:
        emit_object(api.get(f"/workflows/{name}"), output)
        return
    with database() as session:
        workflow = get_workflow(session, name)
        data = {
            "id": workflow.id,
            "name": workflow.name,
            "version": workflow.version,
            "timeout_seconds": workflow.timeout_seconds,
            "created_at": workflow.created_at,
            "updated_at": workflow.updated_at,
            "definition": workflow.definition,
        }
    emit_object(data, output)
