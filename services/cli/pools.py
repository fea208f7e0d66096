"""`wfctl pools`: named concurrency pools shared by workflows (`pool: NAME`)."""

from __future__ import annotations

import typer

from services.cli.context import database
from services.cli.render import OUTPUT_OPTION, OutputFormat, emit_rows
from services.core.audit import cli_actor
from services.core.pools import check_pool, list_pools, set_pool

app = typer.Typer(help="Concurrency pools: slots shared by the workflows that name them.", no_args_is_help=True)


@app.command("set")
def set_(
    name: str,
    slots: int = typer.Option(..., "--slots", help="Runs of the pool's workflows that may hold a slot at once (≥ 1)"),
) -> None:
    """Create a pool or change its number of slots."""
    check_pool(name, slots)  # before touching the database: bad input changes nothing
    with database() as session:
        created = set_pool(session, name, slots, actor=cli_actor())
    typer.echo(f"pool {name} {'created' if created else 'updated'} ({slots} slot{'s' if slots != 1 else ''})")


@app.command("list")
def list_(output: OutputFormat = OUTPUT_OPTION) -> None:
    """List pools with their slots, the slots in use and the runs waiting."""
    with database() as session:
        rows = list_pools(session)
    emit_rows(rows, ["name", "slots", "in_use", "queued", "updated_at"], output)
