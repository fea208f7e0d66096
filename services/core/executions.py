"""The execution record's state machine, shared by the spawner, the runner and the reconciler.

Every change of status is a conditional UPDATE (`WHERE status IN (...)`), so concurrent writers
(several spawner replicas, a duplicate Job, the reconciler) never overwrite a terminal status:
the first writer wins and the others learn they lost from the returned flag.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from services.core.db.models import (
    ACTIVE_STATUSES,
    Execution,
    ExecutionStatus,
    Workflow,
)
from services.core.messages import RunMessage
from services.core.workflows import DEFAULT_RETRY

RETRYABLE_STATUSES: frozenset[str] = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT})


def now_utc() -> datetime:
    return datetime.now(UTC)


def insert_execution(session: Session, message: RunMessage) -> tuple[Execution, bool]:
    """Insert the execution for a message by its dedup key; returns (execution, created).

    A duplicate delivery finds the existing row (created False) instead of a second record.
    """
    statement = (
        insert(Execution)
        .values(
            id=uuid.uuid4(),
            workflow_id=message.workflow_id,
            schedule_id=message.schedule_id,
            trigger=str(message.trigger),
            scheduled_for=message.scheduled_for,
            dedup_key=message.dedup_key,
            attempt=message.attempt,
            retry_of=message.retry_of,
            status=ExecutionStatus.PENDING.value,
            input=message.input,
        )
        .on_conflict_do_nothing(index_elements=[Execution.dedup_key])
        .returning(Execution.id)
    )
    created_id = session.execute(statement).scalar_one_or_none()
    execution = session.scalar(
        select(Execution).where(Execution.dedup_key == message.dedup_key).execution_options(populate_existing=True)
    )
    assert execution is not None
    return execution, created_id is not None


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
    return result.rowcount == 1


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
) -> bool:
    """End an execution with a terminal status, scheduling a retry when attempts remain.

    Returns False (and changes nothing) when the execution is already terminal.
    """
    finished_at = now_utc()
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
        session.scalars(select(Execution).where(cast(Execution.id, String).startswith(text)).limit(2))
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


def execution_summary(execution: Execution) -> dict[str, Any]:
    duration = None
    if execution.started_at and execution.finished_at:
        duration = round((execution.finished_at - execution.started_at).total_seconds(), 3)
    return {
        "id": execution.id,
        "workflow": execution.workflow.name,
        "schedule_id": execution.schedule_id,
        "trigger": execution.trigger,
        "status": execution.status,
        "attempt": execution.attempt,
        "scheduled_for": execution.scheduled_for,
        "created_at": execution.created_at,
        "started_at": execution.started_at,
        "finished_at": execution.finished_at,
        "duration_seconds": duration,
        "job_name": execution.job_name,
        "error": execution.error,
    }


def execution_detail(execution: Execution) -> dict[str, Any]:
    detail = execution_summary(execution)
    detail.update(
        {
            "dedup_key": execution.dedup_key,
            "retry_of": execution.retry_of,
            "next_retry_at": execution.next_retry_at,
            "input": execution.input,
            "output": execution.output,
            "steps": [
                {
                    "id": step.step_id,
                    "type": step.type,
                    "status": step.status,
                    "started_at": step.started_at,
                    "finished_at": step.finished_at,
                    "output": step.output,
                    "error": step.error,
                }
                for step in execution.steps
            ],
        }
    )
    return detail
