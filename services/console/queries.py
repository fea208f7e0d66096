"""Read models for the API and the console: pages of executions, dashboard numbers, gauges.

Everything here only reads. Pagination is keyset-based on (created_at, id), newest first, so a
page never repeats or skips a row when new executions arrive between two requests.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from services.core.db.models import Execution, ExecutionStatus, Schedule, Workflow
from services.core.errors import UserError
from services.core.views import execution_summary

MAX_PAGE = 200
FAILED_STATUSES = (ExecutionStatus.FAILED.value, ExecutionStatus.TIMED_OUT.value)


def encode_cursor(created_at: datetime, execution_id: uuid.UUID) -> str:
    raw = f"{created_at.astimezone(UTC).isoformat()}|{execution_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_text, id_text = raw.split("|", 1)
        return datetime.fromisoformat(created_text), uuid.UUID(id_text)
    except (ValueError, UnicodeDecodeError):
        raise UserError("cursor", "is not a cursor this API returned") from None


def check_status(status: str | None) -> str | None:
    if status is None or status == "":
        return None
    if status not in {s.value for s in ExecutionStatus}:
        raise UserError("status", f"{status!r} is not one of {', '.join(s.value for s in ExecutionStatus)}")
    return status


@dataclass(frozen=True)
class ExecutionPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


def execution_page(
    session: Session,
    *,
    workflow: str | None = None,
    status: str | None = None,
    schedule: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    dedup_key: str | None = None,
) -> ExecutionPage:
    """One page of executions, newest first, with the cursor of the next page (None at the end)."""
    if not 1 <= limit <= MAX_PAGE:
        raise UserError("limit", f"must be between 1 and {MAX_PAGE}")
    query = select(Execution).order_by(Execution.created_at.desc(), Execution.id.desc()).limit(limit + 1)
    if workflow:
        workflow_id = session.scalar(select(Workflow.id).where(Workflow.name == workflow))
        if workflow_id is None:
            raise UserError("workflow", f"no workflow named {workflow!r}")
        query = query.where(Execution.workflow_id == workflow_id)
    if schedule:
        schedule_id = session.scalar(select(Schedule.id).where(Schedule.name == schedule))
        if schedule_id is None:
            raise UserError("schedule", f"no schedule named {schedule!r}")
        query = query.where(Execution.schedule_id == schedule_id)
    if dedup_key:
        query = query.where(Execution.dedup_key == dedup_key)
    checked = check_status(status)
    if checked:
        query = query.where(Execution.status == checked)
    if cursor:
        created_at, last_id = decode_cursor(cursor)
        query = query.where(
            or_(Execution.created_at < created_at, and_(Execution.created_at == created_at, Execution.id < last_id))
        )
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return ExecutionPage(items=[execution_summary(e) for e in rows], next_cursor=next_cursor)


def schedule_names(session: Session) -> dict[uuid.UUID, str]:
    return dict(session.execute(select(Schedule.id, Schedule.name)).all())


def status_counts(session: Session, since: datetime | None = None) -> dict[str, int]:
    """Executions per status (every status present, zero when none), optionally created since a time."""
    query = select(Execution.status, func.count()).group_by(Execution.status)
    if since is not None:
        query = query.where(Execution.created_at >= since)
    counts = {s.value: 0 for s in ExecutionStatus}
    counts.update({status: count for status, count in session.execute(query).all()})
    return counts


@dataclass(frozen=True)
class Backlog:
    due_schedules: int
    lag_seconds: float


def dispatcher_backlog(session: Session, now: datetime | None = None) -> Backlog:
    """Enabled schedules whose next fire time has passed, and how long the oldest has waited.

    The dispatcher ticks every minute, so a lag of up to ~60 s is normal; more means it is not
    running (or cannot keep up).
    """
    current = now or datetime.now(UTC)
    row = session.execute(
        select(func.count(), func.min(Schedule.next_run_at)).where(
            Schedule.enabled.is_(True), Schedule.next_run_at <= current
        )
    ).one()
    count, oldest = row
    lag = (current - oldest).total_seconds() if oldest is not None else 0.0
    return Backlog(due_schedules=int(count), lag_seconds=max(0.0, lag))


def recent_failures(session: Session, limit: int = 10) -> list[dict[str, Any]]:
    query = (
        select(Execution)
        .where(Execution.status.in_(FAILED_STATUSES))
        .order_by(Execution.created_at.desc(), Execution.id.desc())
        .limit(limit)
    )
    return [execution_summary(e) for e in session.scalars(query)]


def active_executions(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    from services.core.db.models import ACTIVE_STATUSES

    query = (
        select(Execution)
        .where(Execution.status.in_([str(s) for s in ACTIVE_STATUSES]))
        .order_by(Execution.created_at.desc())
        .limit(limit)
    )
    return [execution_summary(e) for e in session.scalars(query)]


def hourly_runs(session: Session, now: datetime | None = None, hours: int = 24) -> list[dict[str, Any]]:
    """Runs created per hour over the last `hours`, split into succeeded / failed / other."""
    current = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    start = current - timedelta(hours=hours - 1)
    # Truncated in UTC whatever the session's time zone (zones with half-hour offsets exist).
    bucket = func.date_trunc("hour", func.timezone("UTC", Execution.created_at))
    rows = session.execute(
        select(bucket, Execution.status, func.count())
        .where(Execution.created_at >= start)
        .group_by(bucket, Execution.status)
    )
    buckets = {start + timedelta(hours=i): {"succeeded": 0, "failed": 0, "other": 0} for i in range(hours)}
    for hour, status, count in rows:
        key = hour.replace(tzinfo=UTC)
        if key not in buckets:
            continue
        kind = "succeeded" if status == "succeeded" else "failed" if status in FAILED_STATUSES else "other"
        buckets[key][kind] += count
    return [{"hour": hour, **values} for hour, values in sorted(buckets.items())]


def workflow_durations(session: Session, workflow_id: uuid.UUID, limit: int = 50) -> list[dict[str, Any]]:
    """The last `limit` finished runs of a workflow, oldest first, with their durations."""
    query = (
        select(Execution)
        .where(
            Execution.workflow_id == workflow_id,
            Execution.started_at.is_not(None),
            Execution.finished_at.is_not(None),
        )
        .order_by(Execution.created_at.desc())
        .limit(limit)
    )
    rows = [execution_summary(e) for e in session.scalars(query)]
    return list(reversed(rows))


def workflow_stats(session: Session) -> dict[uuid.UUID, dict[str, Any]]:
    """Per workflow: runs in total and the status of the latest one."""
    counts = dict(
        session.execute(select(Execution.workflow_id, func.count()).group_by(Execution.workflow_id)).all()
    )
    latest_sub = (
        select(Execution.workflow_id, func.max(Execution.created_at).label("latest"))
        .group_by(Execution.workflow_id)
        .subquery()
    )
    latest = session.execute(
        select(Execution.workflow_id, Execution.status, Execution.created_at).join(
            latest_sub,
            and_(Execution.workflow_id == latest_sub.c.workflow_id, Execution.created_at == latest_sub.c.latest),
        )
    )
    stats: dict[uuid.UUID, dict[str, Any]] = {
        wid: {"runs": n, "last_status": None, "last_run_at": None} for wid, n in counts.items()
    }
    for wid, status, created in latest:
        stats.setdefault(wid, {"runs": 0})
        stats[wid].update(last_status=status, last_run_at=created)
    return stats
