"""Helpers for dispatcher tests: schedules created at a chosen time, ticks, and sent messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from services.core.db.session import session_factory
from services.core.queue import Queue
from services.core.workflows import apply_workflow, parse_workflow
from services.dispatcher.schedules import ScheduleSpec, create_schedule
from services.dispatcher.tick import TickSummary, dispatcher_sessions, tick

WORKFLOW = """
name: nightly
steps:
  - {id: hello, type: log, with: {message: "hello"}}
"""


def make_schedule(database_url: str, now: datetime, **fields: Any) -> str:
    """Apply the test workflow and create a schedule as if at `now`; returns the schedule id."""
    with session_factory(database_url)() as session, session.begin():
        apply_workflow(session, parse_workflow(WORKFLOW))
        spec = ScheduleSpec(**{"name": "nightly", "workflow": "nightly", "cron": "* * * * *", **fields})
        return str(create_schedule(session, spec, now=now).id)


def minutes(start: datetime, end: datetime, offset_seconds: int = 5) -> Iterator[datetime]:
    """Every minute from start to end inclusive, `offset_seconds` into the minute (bounded)."""
    current = start.replace(second=offset_seconds, microsecond=0)
    for _ in range(100_000):
        if current > end:
            return
        yield current
        current += timedelta(minutes=1)


def run_ticks(database_url: str, queue: Queue, times: Iterator[datetime]) -> list[TickSummary]:
    maker = dispatcher_sessions(database_url)  # as `wfctl dispatch` runs them
    return [tick(maker, queue, now=t) for t in times]


def sent_bodies(queues: Any) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in queues.drain()]


def scheduled_for(queues: Any) -> list[str]:
    return sorted(b["scheduled_for"] for b in sent_bodies(queues))


def session_for(database_url: str) -> Session:
    return session_factory(database_url)()
