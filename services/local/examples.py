"""Apply the examples (`wfctl apply` documents in examples/) and trigger one manual run.

The examples are the same files a user applies with `wfctl apply -f examples/`. Here every
schedule's input also gets `base_url`, the demo API the examples call, so they run offline.
Existing schedules are left as they are, so a restart keeps the user's changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

from services.core.db.models import Schedule
from services.core.db.session import session_scope
from services.core.queue import Queue
from services.dispatcher.apply import apply_documents, parse_documents, read_manifests
from services.dispatcher.triggers import trigger_manual_run

# The workflow run once when the platform starts.
RUN_NOW = "health-check"


def apply_examples(directory: Path, base_url: str, database_url: str, queue: Queue) -> Iterator[str]:
    """Apply every workflow, create the schedules that do not exist yet, and run `RUN_NOW` once."""
    documents = parse_documents(read_manifests(directory))
    with session_scope(database_url) as session:
        existing = set(session.scalars(select(Schedule.name)))
        chosen = []
        for doc in documents:
            if doc.kind == "Schedule":
                if doc.name in existing:
                    continue
                doc = replace(doc, body={**doc.body, "input": {**(doc.body.get("input") or {}), "base_url": base_url}})
            chosen.append(doc)
        for change in apply_documents(session, chosen):
            yield change.line()
        if any(d.kind == "Workflow" and d.name == RUN_NOW for d in documents):
            message = trigger_manual_run(session, queue, RUN_NOW, {"base_url": base_url})
            yield f"run of {RUN_NOW} enqueued ({message.dedup_key})"
