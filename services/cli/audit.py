"""`wfctl audit list`: who changed what, when (SPEC §9)."""

from __future__ import annotations

import typer

from services.cli.context import database
from services.cli.render import OUTPUT_OPTION, OutputFormat, emit_rows
from services.core.audit import event_row, list_events

app = typer.Typer(help="The audit trail of changes.", no_args_is_help=True)


@app.command("list")
def list_(
    kind: str | None = typer.Option(None, "--kind", help="Only this target kind (workflow, schedule, token, …)"),
    target: str | None = typer.Option(None, "--target", help="Only this object (by name)"),
    actor: str | None = typer.Option(None, "--actor", help="Only changes by this actor"),
    limit: int = typer.Option(100, "--limit", help="At most this many, newest first"),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """List audit events, newest first."""
    with database() as session:
        rows = [event_row(e) for e in list_events(session, kind, target, actor, limit)]
    emit_rows(rows, ["at", "actor", "action", "target_kind", "target", "details"], output)
