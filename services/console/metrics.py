"""`/metrics`: platform gauges read from Postgres at scrape time (Prometheus text format)."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.console import queries
from services.core.db.models import ExecutionStatus, Notification, NotificationStatus


def render_metrics(session: Session, now: datetime | None = None) -> bytes:
    current = now or datetime.now(UTC)
    registry = CollectorRegistry()
    backlog = queries.dispatcher_backlog(session, current)
    Gauge("workflow_due_schedules", "Enabled schedules whose next fire time has passed", registry=registry).set(
        backlog.due_schedules
    )
    Gauge(
        "workflow_dispatcher_lag_seconds",
        "How long the oldest due fire time has waited for the dispatcher",
        registry=registry,
    ).set(backlog.lag_seconds)
    by_status = Gauge("workflow_executions", "Executions by status", ["status"], registry=registry)
    for status, count in queries.status_counts(session).items():
        by_status.labels(status=status).set(count)
    Gauge("workflow_queued_runs", "Runs waiting as queued", registry=registry).set(
        queries.status_counts(session).get(ExecutionStatus.QUEUED.value, 0)
    )
    outbox = Gauge("workflow_notifications", "Notifications in the outbox by status", ["status"], registry=registry)
    counts = dict(
        session.execute(select(Notification.status, func.count()).group_by(Notification.status)).all()
    )
    for status in NotificationStatus:
        outbox.labels(status=status.value).set(counts.get(status.value, 0))
    return generate_latest(registry)
