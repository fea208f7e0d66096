"""`wfctl audit list`: who changed what, when (SPEC §9)."""

from __future__ import annotations

import typer

from services.cli.context import database
from services.cli.remote import remote_api
from services.cli.render import OUTPUT_OPTION, OutputFormat, emit_rows
from services.core.audit import MAX_LIST, TARGET_KINDS, event_row, list_events
from services.core.errors import UserError

COLUMNS = ["at", "actor", "action", "target_kind", "target", "details"]

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
    if not 1 <= limit <= MAX_LIST:
        raise UserError("limit", f"must be between 1 and {MAX_LIST}")
    if kind is not None and kind not in TARGET_KINDS:
        raise UserError("kind", f"{kind!r} is not one of {', '.join(sorted(TARGET_KINDS))}")
    if (api := remote_api()) is not None:
        rows = api.get("/audit", target_kind=kind, target=target, actor=actor, limit=limit)["items"]
        emit_rows(rows, COLUMNS, output)
        return
    with database() as session:
        rows = [event_row(e) for e in list_events(session, kind, target, actor, limit)]
    emit_rows(rows, COLUMNS, output)
