"""The outbox table: writing notification rows and reading them back (no delivery here).

A row is written in the caller's transaction, so it exists exactly when the change that caused it
committed. Its idempotency key is unique per (event, execution or schedule + fire time, channel):
writing the same event twice (a retried transaction, a second tick, a redelivered message) is a
no-op, which is what "one notification per event" rests on.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from services.core.db.models import Notification, NotificationStatus
from services.core.errors import UserError

log = logging.getLogger(__name__)


def idempotency_key(event: str, subject: str, channel: str) -> str:
    """`failed:<execution id>:ops-hook`, `missed:<schedule id>:<fire time>:ops-hook`, …"""
    return f"{event}:{subject}:{channel}"


def fire_time_subject(schedule_id: uuid.UUID, fire_time: datetime) -> str:
    return f"{schedule_id}:{fire_time.isoformat().replace('+00:00', 'Z')}"


def _json_safe(details: dict[str, Any]) -> dict[str, Any]:
    safe: dict[str, Any] = {}
    for key, value in details.items():
        if isinstance(value, datetime):
            safe[key] = value.isoformat().replace("+00:00", "Z")
        elif isinstance(value, uuid.UUID):
            safe[key] = str(value)
        else:
            safe[key] = value
    return safe


def enqueue(
    session: Session,
    event: str,
    subject: str,
    channels: Iterable[str],
    details: dict[str, Any],
    *,
    workflow_id: uuid.UUID | None = None,
    schedule_id: uuid.UUID | None = None,
    execution_id: uuid.UUID | None = None,
    fire_time: datetime | None = None,
) -> int:
    """Write one pending row per channel (existing keys are left alone); returns how many are new."""
    written = 0
    body = _json_safe(details)
    for channel in dict.fromkeys(channels):
        statement = (
            insert(Notification)
            .values(
                idempotency_key=idempotency_key(event, subject, channel),
                event=event,
                channel=channel,
                workflow_id=workflow_id,
                schedule_id=schedule_id,
                execution_id=execution_id,
                fire_time=fire_time,
                details=body,
                status=NotificationStatus.PENDING.value,
                attempts=0,
            )
            .on_conflict_do_nothing(index_elements=[Notification.idempotency_key])
            .returning(Notification.id)
        )
        if session.execute(statement).scalar_one_or_none() is not None:
            written += 1
    if written:
        log.info(
            "notification queued",
            extra={"event": event, "subject": subject, "count": written,
                   "execution_id": str(execution_id) if execution_id else None},
        )
    return written


def guarded(session: Session, what: str, write: Callable[[], int]) -> int:
    """Run `write` in a savepoint: a notification problem must never undo the change it reports.

    The run's status (or the dispatcher's advance) commits whatever happens here; a failure is
    logged and costs only the notification.
    """
    try:
        with session.begin_nested():
            return write()
    except Exception:
        log.exception("could not write a notification", extra={"notification": what})
        return 0


def list_notifications(session: Session, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Newest first, with the error of the last delivery attempt (never a channel's secret)."""
    if status is not None and status not in {s.value for s in NotificationStatus}:
        raise UserError("status", f"{status!r} is not one of pending, sent, failed")
    if not 1 <= limit <= 10_000:
        raise UserError("limit", "must be between 1 and 10000")
    query = select(Notification).order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Notification.status == status)
    return [notification_row(n) for n in session.scalars(query)]


def notification_row(n: Notification) -> dict[str, Any]:
    details = n.details or {}
    return {
        "id": n.id,
        "event": n.event,
        "channel": n.channel,
        "status": n.status,
        "attempts": n.attempts,
        "workflow": details.get("workflow"),
        "schedule": details.get("schedule"),
        "execution_id": n.execution_id,
        "fire_time": n.fire_time,
        "idempotency_key": n.idempotency_key,
        "created_at": n.created_at,
        "next_attempt_at": n.next_attempt_at if n.status == NotificationStatus.PENDING else None,
        "sent_at": n.sent_at,
        "last_error": n.last_error,
    }
