"""The execution record's state machine, shared by the spawner, the runner and the reconciler.

Every change of status is a conditional UPDATE (`WHERE status IN (...)`), so concurrent writers
(several spawner replicas, a duplicate Job, the reconciler) never overwrite a terminal status:
the first writer wins and the others learn they lost from the returned flag.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Connection, select, text, update
from sqlalchemy.orm import Session

from services.core import audit
from services.core.db.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    Execution,
    ExecutionStatus,
    Workflow,
)
from services.core.errors import NotFoundError, UserError
from services.core.messages import RunMessage
from services.core.workflows import DEFAULT_RETRY

RETRYABLE_STATUSES: frozenset[str] = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT})

#: Postgres NOTIFY channel of run control. Payloads: `ended:<id>` (a terminal transition: a
#: concurrency slot may be free) and `cancel:<id>` (stop that run's Job). The spawner LISTENs;
#: notifications are sent at commit, so a listener never sees a change that was rolled back.
RUN_CONTROL_CHANNEL = "workflow_runtime_run_control"
#: Statuses a cancel ends at once (no runner has claimed the run).
CANCEL_AT_ONCE: tuple[str, ...] = (ExecutionStatus.PENDING, ExecutionStatus.QUEUED, ExecutionStatus.STARTING)


def notify(session: Session, kind: str, execution_id: uuid.UUID) -> None:
    """Tell listening spawners (at commit) about `kind` for one execution."""
    session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": RUN_CONTROL_CHANNEL, "payload": f"{kind}:{execution_id}"},
    )


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class NewExecution:
    """What the spawner needs of the execution a message became: which one, where it stands,
    and the input its Job carries."""

    id: uuid.UUID
    dedup_key: str
    status: str
    input: dict[str, Any] | None


# The spawner runs these for every message, so they are plain SQL run on the caller's connection
# (a session's, or the spawner's pooled one): no ORM identity map, and no statement compiled or
# parameters processed per call (a SQLAlchemy Core statement costs about twice the CPU of this).
_PENDING, _STARTING = ExecutionStatus.PENDING.value, ExecutionStatus.STARTING.value
_INSERT_EXECUTION = f"""
INSERT INTO executions (id, workflow_id, schedule_id, trigger, scheduled_for, dedup_key, attempt,
                        retry_of, rerun_of, rerun_from_step, status, input)
VALUES (%(id)s, %(workflow_id)s, %(schedule_id)s, %(trigger)s, %(scheduled_for)s, %(dedup_key)s,
        %(attempt)s, %(retry_of)s, %(rerun_of)s, %(rerun_from_step)s, '{_PENDING}', %(input)s)
ON CONFLICT (dedup_key) DO NOTHING
RETURNING id, dedup_key, status, input
"""
_BY_DEDUP_KEY = "SELECT id, dedup_key, status, input FROM executions WHERE dedup_key = %(dedup_key)s"
_MARK_STARTING = f"""
UPDATE executions SET status = '{_STARTING}', job_name = %(job_name)s, updated_at = %(now)s
WHERE id = %(execution_id)s AND status = '{_PENDING}'
"""


def _connection_of(db: Session | Connection) -> Connection:
    return db.connection() if isinstance(db, Session) else db


def insert_execution(db: Session | Connection, message: RunMessage) -> tuple[NewExecution, bool]:
    """Insert the execution for a message by its dedup key; returns (execution, created).

    A duplicate delivery finds the existing row (created False) instead of a second record.
    In a session's transaction, or on a connection (the spawner's, which needs no ORM session).
    """
    connection = _connection_of(db)
    row = connection.exec_driver_sql(
        _INSERT_EXECUTION,
        {
            "id": uuid.uuid4(),
            "workflow_id": message.workflow_id,
            "schedule_id": message.schedule_id,
            "trigger": str(message.trigger),
            "scheduled_for": message.scheduled_for,
            "dedup_key": message.dedup_key,
            "attempt": message.attempt,
            "retry_of": message.retry_of,
            "rerun_of": message.rerun_of,
            "rerun_from_step": message.from_step,
            "input": Jsonb(message.input),
        },
    ).first()
    created = row is not None
    if row is None:
        row = connection.exec_driver_sql(_BY_DEDUP_KEY, {"dedup_key": message.dedup_key}).one()
    return NewExecution(*row), created


def existing_execution(db: Session | Connection, dedup_key: str) -> NewExecution | None:
    """The execution a dedup key already has, if any (a redelivered message)."""
    row = _connection_of(db).exec_driver_sql(_BY_DEDUP_KEY, {"dedup_key": dedup_key}).first()
    return NewExecution(*row) if row is not None else None


def mark_starting(db: Session | Connection, execution_id: uuid.UUID, job_name: str) -> bool:
    """`pending` → `starting` with its Job's name (the spawner's per-message `transition`)."""
    result = _connection_of(db).exec_driver_sql(
        _MARK_STARTING, {"execution_id": execution_id, "job_name": job_name, "now": now_utc()}
    )
    return result.rowcount == 1


def transition(
    session: Session,
    execution_id: uuid.UUID,
    from_statuses: Iterable[str],
    to_status: ExecutionStatus,
    **fields: Any,
) -> bool:
    """Move an execution to `to_status` if it is in one of `from_statuses`; True when it moved."""
    values: dict[str, Any] = {"status": to_status.value, "updated_at": now_utc(), **fields}
    result = session.execute(
        update(Execution)
        .where(Execution.id == execution_id, Execution.status.in_([str(s) for s in from_statuses]))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    moved = result.rowcount == 1
    if moved and to_status in TERMINAL_STATUSES:
        notify(session, "ended", execution_id)
    return moved


def retry_delay_seconds(retry: dict[str, Any], attempt: int) -> float:
    """Back-off before attempt `attempt + 1`: backoff_seconds * multiplier ** (attempt - 1)."""
    policy = {**DEFAULT_RETRY, **retry}
    return float(policy["backoff_seconds"]) * float(policy["backoff_multiplier"]) ** (attempt - 1)


def next_retry_time(definition: dict[str, Any], attempt: int, finished_at: datetime) -> datetime | None:
    """When the next attempt is due, or None when `attempt` was the last one allowed."""
    retry = {**DEFAULT_RETRY, **(definition.get("retry") or {})}
    if attempt >= int(retry["max_attempts"]):
        return None
    return finished_at + timedelta(seconds=retry_delay_seconds(retry, attempt))


def finish_execution(
    session: Session,
    execution_id: uuid.UUID,
    status: ExecutionStatus,
    *,
    error: str | None = None,
    output: Any = None,
    from_statuses: Iterable[str] = ACTIVE_STATUSES,
    now: datetime | None = None,
) -> bool:
    """End an execution with a terminal status, scheduling a retry when attempts remain.

    Returns False (and changes nothing) when the execution is already terminal. `now` (default:
    the current time) is when it ended and what the retry's back-off counts from, so tests and
    the chaos suite can put retry timing on the same injected clock as the dispatcher's ticks.
    """
    finished_at = now or now_utc()
    row = session.execute(
        select(Execution.attempt, Workflow.definition)
        .join(Workflow, Workflow.id == Execution.workflow_id)
        .where(Execution.id == execution_id)
    ).one_or_none()
    if row is None:
        return False
    fields: dict[str, Any] = {"finished_at": finished_at, "error": error}
    if output is not None:
        fields["output"] = output
    if status in RETRYABLE_STATUSES:
        fields["next_retry_at"] = next_retry_time(row.definition, row.attempt, finished_at)
    return transition(session, execution_id, from_statuses, status, **fields)


@dataclass(frozen=True)
class CancelOutcome:
    """What `cancel_execution` did: `cancelled` (ended at once), `requested` (a running run is
    being stopped), or `already` (an earlier cancel stands); `status` is the status now."""

    execution_id: uuid.UUID
    action: str
    status: str
    requested_by: str | None


def cancel_execution(session: Session, execution_id: uuid.UUID, requested_by: str) -> CancelOutcome:
    """Cancel a run that has not finished (SPEC §4, Run control); the caller commits.

    Not yet running (pending, queued, starting): it ends `cancelled` now; a runner's claim then
    fails, and the spawner deletes its Job if one was created. Running: the request (who, when)
    is recorded and the spawner is told; it deletes the Job (or terminates the local process)
    and the runner records `cancelled` for the run and the step in flight. Asking again is
    harmless; cancelling a finished run is a `UserError`.
    """
    for _ in range(3):  # the status may move under us (a claim, a finish): look again, bounded
        now = now_utc()
        if transition(
            session, execution_id, CANCEL_AT_ONCE, ExecutionStatus.CANCELLED,
            finished_at=now, error=f"cancelled by {requested_by}",
            cancel_requested_at=now, cancel_requested_by=requested_by, queued_reason=None,
        ):
            notify(session, "cancel", execution_id)
            audit.record(session, requested_by, "execution.cancel", "execution", str(execution_id))
            return CancelOutcome(execution_id, "cancelled", ExecutionStatus.CANCELLED.value, requested_by)
        requested = session.execute(
            update(Execution)
            .where(
                Execution.id == execution_id,
                Execution.status == ExecutionStatus.RUNNING.value,
                Execution.cancel_requested_at.is_(None),
            )
            .values(cancel_requested_at=now, cancel_requested_by=requested_by, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if requested:
            notify(session, "cancel", execution_id)
            audit.record(session, requested_by, "execution.cancel", "execution", str(execution_id), {"running": True})
            return CancelOutcome(execution_id, "requested", ExecutionStatus.RUNNING.value, requested_by)
        row = session.execute(
            select(Execution.status, Execution.cancel_requested_by).where(Execution.id == execution_id)
        ).one_or_none()
        if row is None:
            raise NotFoundError("execution", f"no execution with id {execution_id}")
        status, by = row
        if status == ExecutionStatus.CANCELLED or (status == ExecutionStatus.RUNNING and by is not None):
            if status == ExecutionStatus.RUNNING:
                notify(session, "cancel", execution_id)  # harmless; helps if a spawner missed it
            return CancelOutcome(execution_id, "already", status, by)
        if status in TERMINAL_STATUSES:
            message = f"{execution_id} already ended {status}; only an unfinished run can be cancelled"
            raise UserError("execution", message)
    raise UserError("execution", f"{execution_id} kept changing status; try again")


def get_execution(session: Session, execution_id: uuid.UUID) -> Execution | None:
    return session.get(Execution, execution_id, populate_existing=True)


def find_execution(session: Session, id_or_prefix: str) -> Execution | None:
    """By full id, or by a unique prefix of at least 8 characters (as tables show them)."""
    from sqlalchemy import String, cast

    text = id_or_prefix.strip().lower()
    try:
        return get_execution(session, uuid.UUID(text))
    except ValueError:
        pass
    if len(text) < 8:
        return None
    matches = list(
        session.scalars(select(Execution).where(cast(Execution.id, String).startswith(text, autoescape=True)).limit(2))
    )
    return matches[0] if len(matches) == 1 else None


def list_executions(
    session: Session,
    workflow_id: uuid.UUID | None = None,
    status: str | None = None,
    limit: int = 50,
) -> list[Execution]:
    query = select(Execution).order_by(Execution.created_at.desc()).limit(limit)
    if workflow_id is not None:
        query = query.where(Execution.workflow_id == workflow_id)
    if status is not None:
        query = query.where(Execution.status == status)
    return list(session.scalars(query))
