"""`wfctl tokens`: API tokens with roles for the operator API and console (SPEC §9)."""

from __future__ import annotations

import typer

from services.cli.context import database
from services.cli.render import OUTPUT_OPTION, OutputFormat, emit_object, emit_rows
from services.core.audit import cli_actor
from services.core.tokens import create_token, list_tokens, revoke_token

app = typer.Typer(help="API tokens (viewer, operator, admin) for `wfctl serve`.", no_args_is_help=True)


@app.command("create")
def create(
    name: str,
    role: str = typer.Option(..., "--role", help="viewer, operator or admin"),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Create a token and print it: the only time it is shown (only its hash is stored)."""
    with database() as session:
        token = create_token(session, name, role, actor=cli_actor())
    if output == OutputFormat.JSON:
        emit_object({"name": name, "role": role, "token": token}, output)
        return
    typer.echo(token)
    typer.echo(f"token {name} ({role}) created; it is not shown again", err=True)


@app.command("list")
def list_(output: OutputFormat = OUTPUT_OPTION) -> None:
    """List tokens: names, roles and dates (never a token)."""
    with database() as session:
        rows = list_tokens(session)
    emit_rows(rows, ["name", "role", "created_at", "last_used_at", "revoked_at"], output)


@app.command("revoke")
def revoke(name: str) -> None:
    """Revoke a token: its API calls and console sessions stop working at once."""
    with database() as session:
        revoke_token(session, name, actor=cli_actor())
    typer.echo(f"token {name} revoked")
