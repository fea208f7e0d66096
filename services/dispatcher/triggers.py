"""Manual runs (`wfctl run`): enqueue a `manual` message; the spawner creates the record."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core import audit
from services.core.db.models import TERMINAL_STATUSES, Execution, StepRun, Trigger
from services.core.errors import UserError
from services.core.executions import RETRYABLE_STATUSES, next_retry_time, retry_delay_seconds
from services.core.inputs import check_input
from services.core.messages import RunMessage, manual_dedup_key, rerun_dedup_key, retry_dedup_key
from services.core.queue import OutgoingMessage, Queue
from services.core.workflows import DEFAULT_RETRY, DEFAULT_TIMEOUT_SECONDS, get_workflow


def trigger_manual_run(
    session: Session,
    queue: Queue,
    workflow_name: str,
    payload: dict[str, Any],
    *,
    actor: str = audit.SYSTEM_ACTOR,
) -> RunMessage:
    workflow = get_workflow(session, workflow_name)
    message = RunMessage(
        trigger=Trigger.MANUAL,
        dedup_key=manual_dedup_key(uuid.uuid4()),
        workflow_id=workflow.id,
        input=check_input(payload),
    )
    audit.record(session, actor, "workflow.run", "workflow", workflow.name, {"dedup_key": message.dedup_key})
    queue.send(OutgoingMessage(body=message.to_json()))
    return message


#: Step statuses a re-run may reuse (the runner's rule: services.runtime.store.REUSABLE).
REUSABLE_STEP_STATUSES = ("succeeded", "skipped", "reused")


def trigger_rerun(
    session: Session,
    queue: Queue,
    execution: Execution,
    from_step: str | None = None,
    payload: dict[str, Any] | None = None,
    *,
    actor: str = audit.SYSTEM_ACTOR,
) -> RunMessage:
    """Re-run a finished execution as a new one (trigger `rerun`), whole or from `from_step`.

    With `from_step`, the steps before it are not run again: the runner records them `reused`
    with the outputs this execution recorded, so each of them must have succeeded (or been
    skipped) here. The input is the original's unless `payload` is given. Enqueued like a
    manual run, so concurrency limits and pools apply.
    """
    if execution.status not in TERMINAL_STATUSES:
        raise UserError("execution", f"{execution.id} is still {execution.status}; only a finished run can be re-run")
    steps = [step["id"] for step in execution.workflow.definition.get("steps", [])]
    if from_step is not None:
        if from_step not in steps:
            known = ", ".join(steps)
            name = execution.workflow.name
            raise UserError("from-step", f"workflow {name} has no step {from_step!r} (steps: {known})")
        recorded = {
            step.step_id: step.status
            for step in session.scalars(select(StepRun).where(StepRun.execution_id == execution.id))
        }
        for step_id in steps[: steps.index(from_step)]:
            status = recorded.get(step_id)
            if status not in REUSABLE_STEP_STATUSES:
                raise UserError(
                    "from-step",
                    f"step {step_id!r} before {from_step!r} has no output to reuse in execution {execution.id} "
                    f"({status or 'it never ran'}); re-run from {step_id!r} or earlier",
                )
    message = RunMessage(
        trigger=Trigger.RERUN,
        dedup_key=rerun_dedup_key(uuid.uuid4()),
        workflow_id=execution.workflow_id,
        scheduled_for=execution.scheduled_for,
        input=check_input(execution.input if payload is None else payload),
        rerun_of=execution.id,
        from_step=from_step,
    )
    queue.send(OutgoingMessage(body=message.to_json()))
    audit.record(
        session, actor, "execution.rerun", "execution", str(execution.id),
        {"from_step": from_step, "dedup_key": message.dedup_key},
    )
    return message


def wait_for_execution(
    session_maker: Callable[[], Session], dedup_key: str, timeout_seconds: float, poll_seconds: float = 1.0
) -> Execution | None:
    """Poll until the run for `dedup_key` has its final outcome; None on time-out.

    A failed or timed-out attempt with attempts left under the workflow's `retry` is not final:
    the wait follows the retry (its dedup key `retry:<execution-id>:<attempt>` is known in
    advance) until an attempt succeeds or the last one ends.
    """
    deadline = time.monotonic() + timeout_seconds
    key = dedup_key
    while time.monotonic() < deadline:
        with session_maker() as session:
            execution = session.scalar(select(Execution).where(Execution.dedup_key == key))
            if execution is not None and execution.status in TERMINAL_STATUSES:
                if not _will_retry(execution):
                    return execution
                key = retry_dedup_key(execution.id, execution.attempt + 1)
                continue
        time.sleep(poll_seconds)
    return None


def _will_retry(execution: Execution) -> bool:
    """The platform schedules another attempt (the rule of `finish_execution`)."""
    if execution.status not in RETRYABLE_STATUSES:
        return False
    return next_retry_time(execution.workflow.definition, execution.attempt, datetime.now(UTC)) is not None


def wait_budget_seconds(definition: dict[str, Any], margin_seconds: float) -> float:
    """How long every attempt of a run may take: deadlines, back-offs, and a margin per attempt."""
    retry = {**DEFAULT_RETRY, **(definition.get("retry") or {})}
    attempts = int(retry["max_attempts"])
    timeout = float(definition.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS))
    backoffs = sum(retry_delay_seconds(retry, attempt) for attempt in range(1, attempts))
    return attempts * (timeout + margin_seconds) + backoffs
