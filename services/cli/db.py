"""`wfctl db`: database migrations."""

from __future__ import annotations

import typer

from services.cli.context import settings
from services.core.db import migrate

app = typer.Typer(help="Database administration.", no_args_is_help=True)


@app.command("upgrade")
def upgrade() -> None:
    """Apply the database migrations (safe to run repeatedly)."""
    url = settings().require_database_url()
    migrate.upgrade(url)
    typer.echo(f"database at revision {migrate.current_revision(url)}")
