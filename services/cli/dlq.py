"""`wfctl dlq list` / `wfctl dlq redrive`: inspect and resend dead-lettered run requests."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from services.cli.render import OUTPUT_OPTION, OutputFormat, emit_rows

app = typer.Typer(help="The dead-letter queue: messages the spawner could not use.", no_args_is_help=True)

COLUMNS = ("message_id", "reason", "age_seconds", "receive_count", "dedup_key")


@app.command("list")
def list_command(output: OutputFormat = OUTPUT_OPTION) -> None:
    """Every dead-lettered message with its reason, age and receive count (nothing is removed)."""
    from services.cli.remote import remote_api

    if (api := remote_api()) is not None:
        rows = api.get("/dlq")["items"]
    else:
        from services.cli.context import dead_letter_queue
        from services.spawner.dead_letters import list_dead_letters

        now = datetime.now(UTC)
        rows = [letter.row(now) for letter in list_dead_letters(dead_letter_queue())]
    if output == OutputFormat.TABLE and not rows:
        typer.echo("the dead-letter queue is empty")
        return
    emit_rows(rows, COLUMNS, output)


@app.command("redrive")
def redrive_command() -> None:
    """Move every dead-lettered message back to the work queue (its reason is dropped)."""
    from services.cli.remote import remote_api

    if (api := remote_api()) is not None:
        typer.echo(api.post("/dlq/redrive")["message"])
        return
    from services.cli.context import database, dead_letter_queue, work_queue
    from services.core.audit import cli_actor
    from services.spawner.dead_letters import redrive_recorded

    with database() as session:
        moved = redrive_recorded(session, dead_letter_queue(), work_queue(), cli_actor())
    typer.echo(f"redrove {moved} message{'s' if moved != 1 else ''} to the work queue")
