"""`wfctl dispatch`: one dispatcher tick (the CronJob's command)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import typer

from services.cli.context import settings, work_queue
from services.core.db.session import session_factory
from services.core.errors import UserError
from services.core.logs import configure_logging
from services.core.messages import parse_utc_iso
from services.dispatcher.schedules import FIRST_SUPPORTED_YEAR, LAST_SUPPORTED_YEAR
from services.dispatcher.tick import tick
from services.notify.sender import sender_from_settings


def dispatch(
    now: str | None = typer.Option(None, "--now", help="Pretend the tick runs at this ISO-8601 time"),
) -> None:
    """Enqueue due fire times and due retries, advance the schedules, print one summary line."""
    current = None
    if now is not None:
        try:
            current = parse_utc_iso(now)
        except ValueError:
            example = "2026-11-28T09:00:00Z"
            raise UserError("now", f"{now!r} is not an ISO-8601 time with an offset (e.g. {example})") from None
        if not FIRST_SUPPORTED_YEAR <= current.year <= LAST_SUPPORTED_YEAR:
            raise UserError("now", f"{now!r} is outside the years {FIRST_SUPPORTED_YEAR}-{LAST_SUPPORTED_YEAR}")
    configure_logging("dispatcher")
    current_settings = settings()
    sessions = session_factory(current_settings.require_database_url())
    sender = sender_from_settings(sessions, current_settings.console_url)
    summary = tick(sessions, work_queue(), now=current, sender=sender)
    if os.environ.get("LOG_FORMAT", "text").lower() == "json":
        # In the cluster the summary is a structured event like every other log line.
        event = {"level": "info", "service": "dispatcher", "message": summary.line(), **asdict(summary)}
        typer.echo(json.dumps(event))
    else:
        typer.echo(summary.line())
