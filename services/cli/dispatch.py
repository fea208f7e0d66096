"""`wfctl dispatch`: one dispatcher tick (the CronJob's command)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

import typer

from services.cli.context import settings, work_queue
from services.cli.render import OutputFormat
from services.core.errors import UserError
from services.core.logs import configure_logging
from services.core.messages import parse_utc_iso
from services.dispatcher.schedules import FIRST_SUPPORTED_YEAR, LAST_SUPPORTED_YEAR
from services.dispatcher.tick import dispatcher_sessions, tick
from services.notify.sender import sender_from_settings

log = logging.getLogger("services.dispatcher")


def dispatch(
    now: str | None = typer.Option(None, "--now", help="Pretend the tick runs at this ISO-8601 time"),
    output: OutputFormat | None = typer.Option(
        None, "--output", "-o", help="json: print the tick's summary as one JSON object (for programs)"
    ),
) -> None:
    """Enqueue due fire times and due retries, advance the schedules, report one summary.

    The summary is a log event (one JSON line in the cluster, where LOG_FORMAT=json), a line on
    standard output on a terminal, or a JSON object with `--output json`.
    """
    current = None
    if now is not None:
        try:
            current = parse_utc_iso(now)
        except ValueError:
            example = "2026-11-28T09:00:00Z"
            raise UserError("now", f"{now!r} is not an ISO-8601 time with an offset (e.g. {example})") from None
        if not FIRST_SUPPORTED_YEAR <= current.year <= LAST_SUPPORTED_YEAR:
            raise UserError("now", f"{now!r} is outside the years {FIRST_SUPPORTED_YEAR}-{LAST_SUPPORTED_YEAR}")
    environment = settings()
    configure_logging("dispatcher", environment)
    sessions = dispatcher_sessions(environment.require_database_url())
    sender = sender_from_settings(sessions, environment)
    summary = tick(sessions, work_queue(), now=current, sender=sender)
    if output == OutputFormat.JSON:
        typer.echo(json.dumps(asdict(summary)))
    elif environment.json_logs:
        log.info(summary.line(), extra=asdict(summary))
    else:
        typer.echo(summary.line())
