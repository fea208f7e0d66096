"""`wfctl schedules`: create, edit, inspect, pause, resume, delete, preview, history and backfill."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import typer

from services.cli.context import database, work_queue
from services.cli.jsonarg import parse_json_option, read_json_argument
from services.cli.remote import remote_api
from services.cli.render import OUTPUT_OPTION, OutputFormat, emit_object, emit_rows, warn_unknown_channels
from services.core.audit import cli_actor
from services.core.db.models import Catchup, Overlap
from services.core.inputs import parse_input
from services.dispatcher import schedules as service

app = typer.Typer(help="Schedules for workflows: cron, interval or one-off.", no_args_is_help=True)

LIST_COLUMNS = ["name", "workflow", "when", "timezone", "state", "catchup", "overlap", "next_run_at"]
HISTORY_COLUMNS = ["fire_time", "local", "decision", "reason", "trigger", "status", "execution_id"]
INPUT_HELP = "JSON object passed to every run; @FILE reads a file, - reads stdin"
CRON_HELP = "5-field cron expression, e.g. '30 2 * * *'; repeat for several (their union)"
EVERY_HELP = "Interval instead of cron, e.g. 90m or 1h30m (real time, anchored at --start or now)"
AT_HELP = "One instant instead of cron (ISO-8601): a one-off run, then the schedule completes"
START_HELP = "No fire time before this instant (ISO-8601; without offset: in --timezone)"
END_HELP = "No fire time after this instant (ISO-8601; without offset: in --timezone)"


def _input(text: str | None) -> dict[str, Any] | None:
    raw = read_json_argument(text, "input")
    return None if raw is None else parse_input(raw)


def _row(schedule: Any) -> dict[str, Any]:
    return {**service.schedule_summary(schedule), "when": service.timing_text(schedule)}


def _next_text(data: dict[str, Any]) -> str:
    if data["state"] == "completed":
        return "- (completed: no fire time left)"
    if data["next_run_at"] is None:
        return "- (paused)"
    return f"{data['next_run_at']:%Y-%m-%dT%H:%M:%SZ}"


@app.command("create")
def create(
    name: str,
    workflow: str = typer.Option(..., "--workflow", help="Name of the workflow to run"),
    cron_expressions: list[str] | None = typer.Option(None, "--cron", help=CRON_HELP),
    every: str | None = typer.Option(None, "--every", help=EVERY_HELP),
    at: str | None = typer.Option(None, "--at", help=AT_HELP),
    start: str | None = typer.Option(None, "--start", help=START_HELP),
    end: str | None = typer.Option(None, "--end", help=END_HELP),
    timezone: str = typer.Option("UTC", "--timezone", help="IANA time zone the expression is read in"),
    input_json: str | None = typer.Option(None, "--input", help=INPUT_HELP),
    catchup: str = typer.Option(Catchup.LATEST.value, "--catchup", help="latest, all or none"),
    catchup_window: int = typer.Option(86400, "--catchup-window", help="Seconds; older missed times never run"),
    overlap: str = typer.Option(Overlap.ALLOW.value, "--overlap", help="allow, skip, replace, buffer_one, buffer_all"),
    jitter: int = typer.Option(0, "--jitter", help="Deterministic delay of 0..N seconds (N <= 900)"),
    paused: bool = typer.Option(False, "--paused", help="Create the schedule paused"),
    notify_json: str | None = typer.Option(
        None, "--notify",
        help='Notification rules (JSON, @FILE or -): [{"on": ["failed"], "channel": "ops"}] or '
        '{"notify": [...], "late_after": "2m", "long_running_after": "1h"}',
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Create a schedule: one or more --cron, or --every, or --at."""
    spec = service.ScheduleSpec(
        name=name,
        workflow=workflow,
        cron=cron_expressions or None,
        every=every,
        at=at,
        start_at=start,
        end_at=end,
        timezone=timezone,
        input=_input(input_json),
        catchup=catchup,
        catchup_window_seconds=catchup_window,
        overlap=overlap,
        jitter_seconds=jitter,
        enabled=not paused,
        notify=parse_json_option(notify_json, "notify"),
    )
    with database() as session:
        schedule = service.create_schedule(session, spec, actor=cli_actor())
        data = service.schedule_summary(schedule)
        warn_unknown_channels(session, schedule.notify, f"schedule {name}")
    if output == OutputFormat.JSON:
        emit_object(data, output)
    else:
        typer.echo(f"schedule {name} created; next run at {_next_text(data)}")


@app.command("update")
def update(
    name: str,
    workflow: str | None = typer.Option(None, "--workflow", help="Run another workflow"),
    cron_expressions: list[str] | None = typer.Option(None, "--cron", help=CRON_HELP + " (replaces the kind)"),
    every: str | None = typer.Option(None, "--every", help=EVERY_HELP + " (replaces the kind)"),
    at: str | None = typer.Option(None, "--at", help=AT_HELP + " (replaces the kind)"),
    start: str | None = typer.Option(None, "--start", help=START_HELP + "; '' removes it"),
    end: str | None = typer.Option(None, "--end", help=END_HELP + "; '' removes it"),
    timezone: str | None = typer.Option(None, "--timezone", help="IANA time zone"),
    input_json: str | None = typer.Option(None, "--input", help=INPUT_HELP),
    catchup: str | None = typer.Option(None, "--catchup", help="latest, all or none"),
    catchup_window: int | None = typer.Option(None, "--catchup-window", help="Seconds"),
    overlap: str | None = typer.Option(None, "--overlap", help="allow, skip, replace, buffer_one, buffer_all"),
    jitter: int | None = typer.Option(None, "--jitter", help="Deterministic delay of 0..N seconds (N <= 900)"),
    notify_json: str | None = typer.Option(
        None, "--notify", help="Notification rules, replacing the schedule's (JSON, @FILE or -; as for create)"
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Edit a schedule in place: same id and dedup keys; the next fire time is recomputed from now."""
    changes = {
        "workflow": workflow,
        "cron": cron_expressions or None,
        "every": every,
        "at": at,
        "start_at": start,
        "end_at": end,
        "timezone": timezone,
        "input": _input(input_json),
        "catchup": catchup,
        "catchup_window_seconds": catchup_window,
        "overlap": overlap,
        "jitter_seconds": jitter,
        "notify": parse_json_option(notify_json, "notify"),
    }
    with database() as session:
        schedule, changed = service.update_schedule(session, name, changes, actor=cli_actor())
        data = service.schedule_summary(schedule)
        if "notify" in changed:
            warn_unknown_channels(session, schedule.notify, f"schedule {name}")
    if output == OutputFormat.JSON:
        emit_object({**data, "changed": changed}, output)
    elif changed:
        typer.echo(f"schedule {name} updated ({', '.join(changed)}); next run at {_next_text(data)}")
    else:
        typer.echo(f"schedule {name} unchanged; next run at {_next_text(data)}")


@app.command("list")
def list_(output: OutputFormat = OUTPUT_OPTION) -> None:
    """List schedules."""
    if (api := remote_api()) is not None:
        emit_rows(api.get("/schedules")["items"], LIST_COLUMNS, output)
        return
    with database() as session:
        rows = [_row(s) for s in service.list_schedules(session)]
    emit_rows(rows, LIST_COLUMNS, output)


@app.command("show")
def show(name: str, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Show one schedule."""
    if (api := remote_api()) is not None:
        emit_object(api.get(f"/schedules/{name}", count=5), output)
        return
    with database() as session:
        data = service.schedule_summary(service.get_schedule(session, name))
    emit_object(data, output)


@app.command("pause")
def pause(name: str) -> None:
    """Pause a schedule: it fires nothing until resumed."""
    if (api := remote_api()) is not None:
        typer.echo(api.post(f"/schedules/{name}/pause")["message"])
        return
    with database() as session:
        service.pause_schedule(session, name, actor=cli_actor())
    typer.echo(f"schedule {name} paused")


@app.command("resume")
def resume(name: str) -> None:
    """Resume a schedule from now (times missed while paused are not run; the ledger lists them)."""
    if (api := remote_api()) is not None:
        result = api.post(f"/schedules/{name}/resume")
        typer.echo(f"{result['message']}; next run at {result['next_run_at']}")
        return
    with database() as session:
        schedule = service.resume_schedule(session, name, actor=cli_actor())
        data = service.schedule_summary(schedule)
    typer.echo(f"schedule {name} resumed; next run at {_next_text(data)}")


@app.command("delete")
def delete(name: str) -> None:
    """Delete a schedule (its execution history stays; its fire-time ledger goes)."""
    if (api := remote_api()) is not None:
        typer.echo(api.delete(f"/schedules/{name}")["message"])
        return
    with database() as session:
        service.delete_schedule(session, name, actor=cli_actor())
    typer.echo(f"schedule {name} deleted")


@app.command("next")
def next_(
    name: str,
    count: int = typer.Option(5, "--count", "-n", help="How many fire times to show"),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Preview the next fire times of any kind (UTC and the schedule's local time)."""
    if (api := remote_api()) is not None:
        emit_rows(api.get(f"/schedules/{name}", count=count)["next_fire_times"], ["utc", "local"], output)
        return
    with database() as session:
        schedule = service.get_schedule(session, name)
        times = service.preview_fire_times(schedule, count)
        zone = ZoneInfo(schedule.timezone)
    rows = [{"utc": t, "local": t.astimezone(zone).isoformat()} for t in times]
    emit_rows(rows, ["utc", "local"], output)


@app.command("history")
def history(
    name: str,
    start: str | None = typer.Option(None, "--from", help="Earliest fire time (ISO-8601, inclusive)"),
    end: str | None = typer.Option(None, "--to", help="Latest fire time (ISO-8601, inclusive)"),
    limit: int = typer.Option(100, "--limit", help="At most this many entries, newest first"),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """The fire-time ledger: each fire time, sent (and its execution) or dropped (and why)."""
    if (api := remote_api()) is not None:
        rows = api.get(f"/schedules/{name}/history", limit=limit, **{"from": start, "to": end})["items"]
        emit_rows(rows, HISTORY_COLUMNS, output)
        return
    with database() as session:
        rows = service.schedule_history(session, name, start, end, limit)
    emit_rows(rows, HISTORY_COLUMNS, output)


@app.command("backfill")
def backfill(
    name: str,
    start: str = typer.Option(..., "--from", help="Start of the range (ISO-8601, inclusive)"),
    end: str = typer.Option(..., "--to", help="End of the range (ISO-8601, inclusive)"),
    reprocess: str = typer.Option(
        service.Reprocess.MISSING,
        "--reprocess",
        help="missing (never ran), failed (also re-run failures) or all (also re-run successes)",
    ),
) -> None:
    """Enqueue the fire times in a range; by default ones that already ran are not run again."""
    if (api := remote_api()) is not None:
        body = {"from": start, "to": end, "reprocess": str(reprocess)}
        typer.echo(api.post(f"/schedules/{name}/backfill", body)["message"])
        return
    with database() as session:
        result = service.backfill_schedule(
            session, work_queue(), name, start, end, reprocess=reprocess, actor=cli_actor()
        )
    extra = f", {result.reprocessed} re-run" if reprocess != service.Reprocess.MISSING else ""
    bounds = f", {result.outside_bounds} outside start/end" if result.outside_bounds else ""
    typer.echo(
        f"backfill {name}: {result.fire_times} fire times, {result.sent} enqueued, "
        f"{result.already_ran} already ran{extra}{bounds}"
    )
