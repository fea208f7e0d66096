"""What an execution looks like to people and programs: the dicts `wfctl --output json` prints
and the operator API returns. Kept apart from the state machine (services.core.executions), so
a change of presentation never touches how statuses move.
"""

from __future__ import annotations

from typing import Any

from services.core.db.models import Execution, ExecutionStatus


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
        # Why a queued run waits (the limit, pool or schedule it waits for).
        "reason": execution.queued_reason if execution.status == ExecutionStatus.QUEUED else None,
    }


def execution_detail(execution: Execution) -> dict[str, Any]:
    detail = execution_summary(execution)
    detail.update(
        {
            "dedup_key": execution.dedup_key,
            "retry_of": execution.retry_of,
            "rerun_of": execution.rerun_of,
            "rerun_from_step": execution.rerun_from_step,
            "next_retry_at": execution.next_retry_at,
            "pool": execution.pool,
            "admitted_at": execution.admitted_at,
            "cancel_requested_by": execution.cancel_requested_by,
            "cancel_requested_at": execution.cancel_requested_at,
            "input": execution.input,
            "output": execution.output,
            "steps": [
                {
                    "id": step.step_id,
                    "type": step.type,
                    "status": step.status,
                    "attempts": step.attempts,
                    "attempt_errors": step.attempt_errors,
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
