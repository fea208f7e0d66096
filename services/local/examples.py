"""Apply the example workflows and their schedules, and trigger one manual run.

`examples/schedules.yaml` lists each example's schedule; every schedule's input gets `base_url`,
the demo API the examples call, so they run offline. Existing schedules are left as they are, so
a restart keeps the user's changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

from services.core.db.models import Schedule
from services.core.db.session import session_scope
from services.core.documents import load_document
from services.core.queue import Queue
from services.core.workflows import apply_workflow, parse_workflow
from services.dispatcher.schedules import ScheduleSpec, create_schedule
from services.dispatcher.triggers import trigger_manual_run


def apply_examples(directory: Path, base_url: str, database_url: str, queue: Queue) -> Iterator[str]:
    """Apply every `*.workflow.yaml`, create missing schedules, and run `run_now` once."""
    manifest: dict[str, Any] = load_document((directory / "schedules.yaml").read_bytes(), "schedules.yaml") or {}
    with session_scope(database_url) as session:
        for path in sorted(directory.glob("*.workflow.yaml")):
            workflow, created = apply_workflow(session, parse_workflow(path.read_text(), source=str(path)))
            yield f"workflow {workflow.name} {'created' if created else 'applied'} (version {workflow.version})"
        existing = set(session.scalars(select(Schedule.name)))
        for entry in manifest.get("schedules", []):
            if entry["name"] in existing:
                continue
            spec = ScheduleSpec(
                name=entry["name"],
                workflow=entry["workflow"],
                cron=entry["cron"],
                timezone=entry.get("timezone", "UTC"),
                input={**entry.get("input", {}), "base_url": base_url},
                catchup=entry.get("catchup", "latest"),
                overlap=entry.get("overlap", "allow"),
            )
            schedule = create_schedule(session, spec)
            yield f"schedule {schedule.name} created ({schedule.cron} {schedule.timezone})"
        if manifest.get("run_now"):
            message = trigger_manual_run(session, queue, manifest["run_now"], {"base_url": base_url})
            yield f"run of {manifest['run_now']} enqueued ({message.dedup_key})"
