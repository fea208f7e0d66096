"""`wfctl channels`: where notifications go (webhook, Slack, email), encrypted at rest."""

from __future__ import annotations

from pathlib import Path

import typer

from services.cli.context import database, settings
from services.cli.render import OUTPUT_OPTION, OutputFormat, emit_rows
from services.core.audit import cli_actor
from services.core.credentials import MAX_CREDENTIAL_BYTES
from services.core.crypto import keyring_from_env
from services.core.documents import load_document, read_file
from services.notify.channels import check_name, list_channels, set_channel, validate_channel
from services.notify.delivery import DeliveryError
from services.notify.sender import send_test

app = typer.Typer(
    help="Notification channels (encrypted with INTEGRATION_ENCRYPTION_KEY; never shown).", no_args_is_help=True
)


@app.command("set")
def set_(
    name: str,
    file: Path = typer.Option(..., "--file", "-f", help="Channel file (JSON or YAML), or - for stdin"),
) -> None:
    """Create or replace channel NAME from a file.

    {"type": "webhook", "url", "secret"?}, {"type": "slack", "url"}, or {"type": "email", "host",
    "port"?, "starttls"?, "username"?, "password"?, "from", "to", "ca_pem"?} (docs/notifications.md).
    """
    check_name(name)
    document = load_document(read_file(file), source=str(file), max_bytes=MAX_CREDENTIAL_BYTES)
    config = validate_channel(document, field="file")
    keyring = keyring_from_env()
    with database() as session:
        created = set_channel(session, name, config, keyring, actor=cli_actor())
    typer.echo(f"channel {name} {'created' if created else 'updated'} ({config['type']})")


@app.command("list")
def list_(output: OutputFormat = OUTPUT_OPTION) -> None:
    """List channels: name, type and when they changed (never a URL, secret or password)."""
    with database() as session:
        rows = list_channels(session)
    emit_rows(rows, ["name", "type", "updated_at"], output)


@app.command("test")
def test(name: str) -> None:
    """Send a test notification over channel NAME now; exit 1 with the error when it fails."""
    keyring = keyring_from_env()
    with database() as session:
        try:
            send_test(session, name, keyring, settings().console_url)
        except DeliveryError as error:
            typer.echo(f"error: channel {name}: {error}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"test notification sent over channel {name}")
