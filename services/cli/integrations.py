"""`wfctl integrations`: named credentials for `http` steps, encrypted at rest."""

from __future__ import annotations

from pathlib import Path

import typer

from services.cli.context import database
from services.cli.render import OUTPUT_OPTION, OutputFormat, emit_rows
from services.core.audit import cli_actor
from services.core.credentials import MAX_CREDENTIAL_BYTES, validate_credential
from services.core.crypto import generate_key, keyring_from_env
from services.core.documents import load_document, read_file
from services.core.integrations import check_name, list_integrations, rotate_key, set_integration
from services.notify.channels import rotate_channels

app = typer.Typer(help="Credentials for http steps (encrypted with INTEGRATION_ENCRYPTION_KEY).", no_args_is_help=True)


@app.command("set")
def set_(
    name: str,
    file: Path = typer.Option(..., "--file", "-f", help="Credential file (JSON or YAML), or - for stdin"),
) -> None:
    """Create or replace integration NAME from a credential file.

    One of {"type": "bearer", "token"}, {"type": "basic", "username", "password"},
    {"type": "header", "name", "value"}, {"type": "query", "name", "value"}.
    """
    check_name(name)
    document = load_document(read_file(file), source=str(file), max_bytes=MAX_CREDENTIAL_BYTES)
    credential = validate_credential(document, field="file")
    keyring = keyring_from_env()
    with database() as session:
        created = set_integration(session, name, credential, keyring, actor=cli_actor())
    typer.echo(f"integration {name} {'created' if created else 'updated'} ({credential['type']})")


@app.command("list")
def list_(output: OutputFormat = OUTPUT_OPTION) -> None:
    """List integrations: name, type and when they changed (never the credential)."""
    with database() as session:
        rows = list_integrations(session)
    emit_rows(rows, ["name", "type", "updated_at"], output)


@app.command("rotate-key")
def rotate() -> None:
    """Re-encrypt every integration and notification channel under the first key.

    Rotation: prepend a new key (NEW,OLD) everywhere, run this, then remove OLD.
    """
    keyring = keyring_from_env()
    with database() as session:
        count = rotate_key(session, keyring, actor=cli_actor())
        channels = rotate_channels(session, keyring)
    suffix = f" and {channels} channel{'s' if channels != 1 else ''}" if channels else ""
    typer.echo(f"re-encrypted {count} integration{'s' if count != 1 else ''}{suffix} under the first key")


@app.command("generate-key")
def generate() -> None:
    """Print a new random encryption key (for INTEGRATION_ENCRYPTION_KEY)."""
    typer.echo(generate_key())
