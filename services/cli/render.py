"""Output for people (rich tables) and for scripts (`--output json`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

import typer
from rich.console import Console
from rich.table import Table


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


OUTPUT_OPTION = typer.Option(OutputFormat.TABLE, "--output", "-o", help="table or json")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(data: Any) -> str:
    return json.dumps(data, default=_default, indent=2, sort_keys=False)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S%z").replace("+0000", "Z")
    if isinstance(value, dict | list):
        return json.dumps(value, default=_default)
    return str(value)


def emit_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], output: OutputFormat) -> None:
    """A list: a table with `columns` for people, the full rows as a JSON array for scripts."""
    if output == OutputFormat.JSON:
        typer.echo(to_json(list(rows)))
        return
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for column in columns:
        table.add_column(column.upper())
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    Console(width=200).print(table)


def emit_object(data: dict[str, Any], output: OutputFormat) -> None:
    """One object: `key: value` lines for people, a JSON object for scripts."""
    if output == OutputFormat.JSON:
        typer.echo(to_json(data))
        return
    width = max((len(k) for k in data), default=0)
    for key, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            typer.echo(f"{key}:")
            for item in value:
                typer.echo("  - " + ", ".join(f"{k}={_cell(v)}" for k, v in item.items()))
        else:
            typer.echo(f"{key.ljust(width)}  {_cell(value)}")


def warn_unknown_channels(session: Any, settings: Any, owner: str) -> None:
    """A `warning:` line on stderr per channel `owner`'s notify rules name that does not exist:
    accepted (channels may come later), but a notification to it would fail when due."""
    from services.notify.channels import unknown_channels

    document = {"notify": settings} if isinstance(settings, list) else settings
    for name in unknown_channels(session, document if isinstance(document, dict) else None):
        hint = f"create it: wfctl channels set {name} -f FILE"
        typer.echo(f"warning: {owner}: notify names no channel {name!r} yet ({hint})", err=True)
