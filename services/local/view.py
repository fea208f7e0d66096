"""What `wfctl local up` shows: a live view for a terminal, status lines otherwise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table
from sqlalchemy import select

from services.core.db.models import Execution, Schedule
from services.core.db.session import session_factory
from services.core.queue import Queue, sqs_client
from services.dispatcher.schedules import timing_text

RECENT = 12


@dataclass
class Snapshot:
    schedules: list[dict[str, Any]]
    executions: list[dict[str, Any]]
    queue_depth: int | None
    dlq_depth: int | None


def _duration(execution: Execution) -> float | None:
    if execution.started_at and execution.finished_at:
        return (execution.finished_at - execution.started_at).total_seconds()
    return None


def take_snapshot(env: dict[str, str]) -> Snapshot:
    with session_factory(env["DATABASE_URL"])() as session:
        schedules = [
            {
                "name": s.name, "cron": timing_text(s), "timezone": s.timezone, "enabled": s.enabled,
                "next_run_at": s.next_run_at,
            }
            for s in session.scalars(select(Schedule).order_by(Schedule.name))
        ]
        executions = [
            {
                "id": str(e.id),
                "workflow": e.workflow.name,
                "trigger": e.trigger,
                "status": e.status,
                "attempt": e.attempt,
                "duration": _duration(e),
                "error": e.error,
            }
            for e in session.scalars(select(Execution).order_by(Execution.created_at.desc()).limit(RECENT))
        ]
    depths: list[int | None] = []
    for key in ("QUEUE_URL", "DLQ_URL"):
        try:
            client = sqs_client(env["AWS_REGION"], env.get("AWS_ENDPOINT_URL"))
            depths.append(Queue(client, env[key]).approximate_depth())
        except Exception:  # the view must not die with the queue
            depths.append(None)
    return Snapshot(schedules, executions, depths[0], depths[1])


STATUS_STYLE = {
    "succeeded": "green", "failed": "red", "timed_out": "red", "running": "cyan", "skipped": "dim", "queued": "yellow",
}


def render(snapshot: Snapshot, last_tick: str) -> Group:
    schedules = Table(title="Schedules", title_justify="left", expand=True)
    for column in ("name", "when", "timezone", "next run (UTC)"):
        schedules.add_column(column)
    for s in snapshot.schedules:
        next_run = s["next_run_at"].strftime("%Y-%m-%d %H:%M") if s["enabled"] and s["next_run_at"] else "paused"
        schedules.add_row(s["name"], s["cron"], s["timezone"], next_run)
    executions = Table(title="Recent executions", title_justify="left", expand=True)
    for column in ("id", "workflow", "trigger", "attempt", "status", "duration", "error"):
        executions.add_column(column)
    for e in snapshot.executions:
        style = STATUS_STYLE.get(e["status"], "")
        duration = f"{e['duration']:.1f}s" if e["duration"] is not None else "-"
        executions.add_row(
            e["id"][:8], e["workflow"], e["trigger"], str(e["attempt"]),
            f"[{style}]{e['status']}[/]" if style else e["status"], duration, (e["error"] or "")[:60],
        )
    queue = Table.grid(padding=(0, 2))
    queue.add_row(
        f"queue depth: {snapshot.queue_depth if snapshot.queue_depth is not None else '?'}",
        f"dead letters: {snapshot.dlq_depth if snapshot.dlq_depth is not None else '?'}",
        f"last tick: {last_tick}",
        "Ctrl-C to stop",
    )
    return Group(schedules, executions, queue)


@dataclass
class StatusLines:
    """For a non-terminal: one line whenever an execution appears or changes status."""

    emit: Callable[[str], None]
    seen: dict[str, str] = field(default_factory=dict)

    def update(self, snapshot: Snapshot) -> None:
        for e in reversed(snapshot.executions):
            if self.seen.get(e["id"]) != e["status"]:
                self.seen[e["id"]] = e["status"]
                duration = f" {e['duration']:.1f}s" if e["duration"] is not None else ""
                error = f" error={e['error']}" if e["error"] else ""
                what = f"{e['workflow']} {e['trigger']} attempt={e['attempt']}"
                self.emit(f"execution {e['id']} {what} {e['status']}{duration}{error}")
