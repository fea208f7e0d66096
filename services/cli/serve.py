"""`wfctl serve`: the operator API and web console (docs/console.md)."""

from __future__ import annotations

import typer

from services.cli.context import settings


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 in a container)"),
    port: int = typer.Option(8080, "--port", help="Port to listen on"),
) -> None:
    """Serve the API (/api/v1, docs at /api/docs) and the console until stopped."""
    from services.console.server import build_server
    from services.core.errors import UserError
    from services.core.settings import ConsoleSettings

    if not 0 <= port <= 65535:
        raise UserError("port", f"{port} is not between 0 and 65535")
    console_settings = ConsoleSettings.from_env()
    database_url = settings().require_database_url()
    server, sock = build_server(console_settings, database_url, host, port)  # refuses a bad address first
    if console_settings.secret_key_generated:
        typer.echo("note: CONSOLE_SECRET_KEY is not set; sign-ins last as long as this process", err=True)
    typer.echo(f"console: http://{host}:{port}/ (API docs at /api/docs)", err=True)
    server.run(sockets=[sock])
