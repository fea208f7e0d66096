"""`wfctl schedules`: create, inspect, pause, resume, delete, preview and backfill schedules."""

from __future__ import annotations

import typer

from services.cli.context import database, work_queue
from services.cli.json_option import parse_json_option
from services.cli.remote import remote_api
from services.cli.render import OUTPUT_OPTION, OutputFormat, emit_object, emit_rows
from services.core.audit import cli_actor
from services.core.db.models import Catchup, Overlap
from services.core.inputs import parse_input
from services.dispatcher import schedules as service

app = typer.Typer(help="Cron schedules for workflows.", no_args_is_help=True)

LIST_COLUMNS = ["name", "workflow", "cron", "timezone", "enabled", "catchup", "overlap", "next_run_at"]


@app.command("create")
def create(
    name: str,
    workflow: str = typer.Option(..., "--workflow", help="Name of the workflow to run"),
    cron_expression: str = typer.Option(..., "--cron", help="5-field cron expression, e.g. '30 2 * * *'"),
    timezone: str = typer.Option("UTC", "--timezone", help="IANA time zone the expression is read in"),
    input_json: str | None = typer.Option(None, "--input", help="JSON object passed to every run"),
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
    """Create a schedule."""
    spec = service.ScheduleSpec(
        name=name,
        workflow=workflow,
        cron=cron_expression,
        timezone=timezone,
        input=parse_input(input_json),
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
    if output == OutputFormat.JSON:
        emit_object(data, output)
    else:
        typer.echo(f"schedule {name} created; next run at {data['next_run_at'] or '- (paused)'}")


@app.command("list")
def list_(output: OutputFormat = OUTPUT_OPTION) -> None:
    """List schedules."""
    if (api := remote_api()) is not None:
        emit_rows(api.get("/schedules")["items"], LIST_COLUMNS, output)
        return
    with database() as session:
        rows = [service.schedule_summary(s) for s in service.list_schedules(session)]
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
    """Resume a schedule from now (times missed while paused are not run)."""
    if (api := remote_api()) is not None:
        result = api.post(f"/schedules/{name}/resume")
        typer.echo(f"{result['message']}; next run at {result['next_run_at']}")
        return
    with database() as session:
        schedule = service.resume_schedule(session, name, actor=cli_actor())
        next_run = schedule.next_run_at
    typer.echo(f"schedule {name} resumed; next run at {next_run:%Y-%m-%dT%H:%M:%SZ}")


@app.command("delete")
def delete(name: str) -> None:
    """Delete a schedule (its execution history stays)."""
    with database() as session:
        service.delete_schedule(session, name, actor=cli_actor())
    typer.echo(f"schedule {name} deleted")


@app.command("next")
def next_(
    name: str,
    count: int = typer.Option(5, "--count", "-n", help="How many fire times to show"),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Preview the next fire times (UTC and the schedule's local time)."""
    from zoneinfo import ZoneInfo

    with database() as session:
        schedule = service.get_schedule(session, name)
        times = service.preview_fire_times(schedule, count)
        zone = ZoneInfo(schedule.timezone)
    rows = [{"utc": t, "local": t.astimezone(zone).isoformat()} for t in times]
    emit_rows(rows, ["utc", "local"], output)


@app.command("backfill")
def backfill(
    name: str,
    start: str = typer.Option(..., "--from", help="Start of the range (ISO-8601, inclusive)"),
    end: str = typer.Option(..., "--to", help="End of the range (ISO-8601, inclusive)"),
) -> None:
    """Enqueue every fire time in a range; ones that already ran are not run again."""
    if (api := remote_api()) is not None:
        typer.echo(api.post(f"/schedules/{name}/backfill", {"from": start, "to": end})["message"])
        return
    with database() as session:
        result = service.backfill_schedule(session, work_queue(), name, start, end, actor=cli_actor())
    typer.echo(
        f"backfill {name}: {result.fire_times} fire times, {result.sent} enqueued, "
        f"{result.already_ran} already ran"
    )
