"""`wfctl notifications`: the outbox — what was (or could not be) delivered, and why."""

from __future__ import annotations

import typer

from services.cli.context import database
from services.cli.render import OUTPUT_OPTION, OutputFormat, emit_rows
from services.notify.outbox import list_notifications

app = typer.Typer(help="Notifications sent, pending and failed (SPEC §10).", no_args_is_help=True)

COLUMNS = ["id", "created_at", "event", "workflow", "schedule", "channel", "status", "attempts", "last_error"]


@app.command("list")
def list_(
    status: str | None = typer.Option(None, "--status", help="pending, sent or failed"),
    limit: int = typer.Option(50, "--limit", help="At most this many, newest first"),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """List notifications, newest first, with the error of the last failed delivery."""
    with database() as session:
        rows = list_notifications(session, status=status, limit=limit)
    emit_rows(rows, COLUMNS, output)
