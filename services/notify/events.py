"""Turning what happened into outbox rows, in the transaction of the change that caused it.

The hooks the services call (each one function call, each safe to call twice):

* `execution_finished` — after a terminal status is written (runner, reconciler, spawner):
  `failed` when no attempt follows, `recovered` on the first success after a final failure.
* `fire_time_dropped` — the dispatcher drops a fire time: `missed`.
* `fire_time_sent` (`fire_times_sent` for a batch) — the dispatcher sends a fire time: arms its
  `late_after` deadline.
* `dead_lettered` — the spawner parks a message in the DLQ.
* `detect_late`, `detect_long_running` — the dispatcher tick checks the deadlines.

Every hook writes inside a savepoint (`outbox.guarded`): a broken rule or table costs the
notification, never the run's status or the dispatcher's progress.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased

from services.core.db.models import (
    Execution,
    ExecutionStatus,
    LateDeadline,
    NotificationEvent,
    Schedule,
    Workflow,
)
from services.core.workflows import DEFAULT_RETRY
from services.notify.outbox import enqueue, fire_time_subject, guarded
from services.notify.rules import Rules, effective_rules

log = logging.getLogger(__name__)

FINAL_FAILURES = (ExecutionStatus.FAILED.value, ExecutionStatus.TIMED_OUT.value)
# A fire time whose run ended like this is not late: it succeeded, or a person/policy chose.
NOT_LATE = (ExecutionStatus.SUCCEEDED.value, ExecutionStatus.SKIPPED.value, ExecutionStatus.CANCELLED.value)
DETECT_BATCH = 500
DETECT_PAGES = 40  # long_running: up to 20,000 running runs with such a rule looked at per tick
SENT_CHUNK_ROWS = 5000  # 3 parameters a row, under PostgreSQL's 65535


def _rules(workflow: Workflow | None, schedule: Schedule | None) -> Rules:
    return effective_rules(
        workflow.definition if workflow is not None else None,
        schedule.notify if schedule is not None else None,
    )


def _subject_details(workflow: Workflow | None, schedule: Schedule | None) -> dict[str, Any]:
    return {
        "workflow": workflow.name if workflow is not None else None,
        "workflow_id": workflow.id if workflow is not None else None,
        "schedule": schedule.name if schedule is not None else None,
        "schedule_id": schedule.id if schedule is not None else None,
        "timezone": schedule.timezone if schedule is not None else None,
    }


def _execution_details(execution: Execution, workflow: Workflow, schedule: Schedule | None) -> dict[str, Any]:
    retry = {**DEFAULT_RETRY, **((workflow.definition or {}).get("retry") or {})}
    return {
        **_subject_details(workflow, schedule),
        "execution_id": execution.id,
        "trigger": execution.trigger,
        "fire_time": execution.scheduled_for,
        "status": execution.status,
        "error": execution.error,
        "attempt": execution.attempt,
        "max_attempts": int(retry["max_attempts"]),
    }


# -- terminal transitions ---------------------------------------------------------------------


def _previous_outcome_failed(session: Session, execution: Execution) -> bool:
    """Was the last *final* outcome before this one (same schedule, else same workflow) a failure?

    Final: a success, or a failure no further attempt followed (a retried attempt is not an
    outcome anyone was told about).
    """
    successor = aliased(Execution)
    scope = (
        Execution.schedule_id == execution.schedule_id
        if execution.schedule_id is not None
        else (Execution.workflow_id == execution.workflow_id) & Execution.schedule_id.is_(None)
    )
    previous = session.scalar(
        select(Execution.status)
        .where(
            scope,
            Execution.id != execution.id,
            Execution.status.in_([ExecutionStatus.SUCCEEDED.value, *FINAL_FAILURES]),
            Execution.finished_at.is_not(None),
            Execution.finished_at <= execution.finished_at,
            Execution.next_retry_at.is_(None),
            ~exists().where(successor.retry_of == Execution.id),
        )
        .order_by(Execution.finished_at.desc())
        .limit(1)
    )
    return previous in FINAL_FAILURES


def _execution_finished(session: Session, execution_id: uuid.UUID) -> int:
    execution = session.get(Execution, execution_id, populate_existing=True)
    if execution is None:
        return 0
    if execution.status in FINAL_FAILURES and execution.next_retry_at is None:
        event = NotificationEvent.FAILED
    elif execution.status == ExecutionStatus.SUCCEEDED and _previous_outcome_failed(session, execution):
        event = NotificationEvent.RECOVERED
    else:
        return 0
    workflow = execution.workflow
    schedule = session.get(Schedule, execution.schedule_id) if execution.schedule_id else None
    channels = _rules(workflow, schedule).channels_for(event)
    if not channels:
        return 0
    return enqueue(
        session, event, str(execution.id), channels, _execution_details(execution, workflow, schedule),
        workflow_id=workflow.id, schedule_id=execution.schedule_id, execution_id=execution.id,
        fire_time=execution.scheduled_for,
    )


def execution_finished(session: Session, execution_id: uuid.UUID) -> int:
    """Call right after a terminal status was written, in the same transaction."""
    return guarded(session, f"execution_finished {execution_id}", lambda: _execution_finished(session, execution_id))


# -- the dispatcher's fire times --------------------------------------------------------------


def _schedule_rules(schedule: Schedule) -> Rules | None:
    """The rules of a schedule's runs, or None when they cannot be read (logged, never raised)."""
    try:
        return _rules(schedule.workflow, schedule)
    except Exception:
        log.exception("unreadable notification rules", extra={"schedule_id": str(schedule.id)})
        return None


def fire_time_dropped(session: Session, schedule: Schedule, fire_time: datetime, reason: str) -> int:
    """A fire time the dispatcher will never run: one `missed` per channel."""
    rules = _schedule_rules(schedule)
    channels = rules.channels_for(NotificationEvent.MISSED) if rules is not None else []
    if not channels:  # the common case costs no statement at all
        return 0

    def write() -> int:
        details = {**_subject_details(schedule.workflow, schedule), "fire_time": fire_time, "reason": reason}
        return enqueue(
            session, NotificationEvent.MISSED, fire_time_subject(schedule.id, fire_time), channels, details,
            workflow_id=schedule.workflow_id, schedule_id=schedule.id, fire_time=fire_time,
        )

    return guarded(session, f"fire_time_dropped {schedule.id} {fire_time}", write)


def fire_time_sent(session: Session, schedule: Schedule, fire_time: datetime) -> int:
    """A fire time the dispatcher sent: when `late_after` applies, its deadline starts now."""
    rules = _schedule_rules(schedule)
    if rules is None or rules.late_after is None or not rules.channels_for(NotificationEvent.LATE):
        return 0
    late_after = rules.late_after

    def write() -> int:
        statement = (
            insert(LateDeadline)
            .values(schedule_id=schedule.id, fire_time=fire_time, due_at=fire_time + late_after)
            .on_conflict_do_nothing(index_elements=[LateDeadline.schedule_id, LateDeadline.fire_time])
        )
        return session.execute(statement).rowcount or 0

    return guarded(session, f"fire_time_sent {schedule.id} {fire_time}", write)


def fire_times_sent(session: Session, sent: Sequence[tuple[Schedule, datetime]]) -> int:
    """`fire_time_sent` for a dispatcher batch: the deadlines in one INSERT, in one savepoint."""
    values: list[dict[str, Any]] = []
    late_after: dict[uuid.UUID, timedelta | None] = {}
    for schedule, fire_time in sent:
        if schedule.id not in late_after:
            rules = _schedule_rules(schedule)
            applies = rules is not None and rules.late_after is not None and rules.channels_for(NotificationEvent.LATE)
            late_after[schedule.id] = rules.late_after if applies and rules is not None else None
        deadline = late_after[schedule.id]
        if deadline is not None:
            values.append({"schedule_id": schedule.id, "fire_time": fire_time, "due_at": fire_time + deadline})
    if not values:
        return 0

    def write() -> int:
        written = 0
        for start in range(0, len(values), SENT_CHUNK_ROWS):
            statement = (
                insert(LateDeadline)
                .values(values[start : start + SENT_CHUNK_ROWS])
                .on_conflict_do_nothing(index_elements=[LateDeadline.schedule_id, LateDeadline.fire_time])
            )
            written += session.execute(statement).rowcount or 0
        return written

    return guarded(session, f"fire_times_sent ({len(values)} fire times)", write)


def _settled_in_time(run: Execution, due_at: datetime) -> bool:
    """The run answers its fire time's deadline: skipped or cancelled (a person or a policy
    chose), or succeeded no later than the deadline (a success after it was still late)."""
    if run.status == ExecutionStatus.SUCCEEDED.value:
        return run.finished_at is None or run.finished_at <= due_at
    return run.status in NOT_LATE


def _resolve_deadline(session: Session, deadline: LateDeadline, now: datetime) -> int:
    """Decide one due deadline: `late` (written to the outbox) or the outcome that settled it."""
    runs = list(
        session.scalars(
            select(Execution)
            .where(Execution.schedule_id == deadline.schedule_id, Execution.scheduled_for == deadline.fire_time)
            .order_by(Execution.attempt.desc(), Execution.created_at.desc())
        )
    )
    done = next((run.status for run in runs if _settled_in_time(run, deadline.due_at)), None)
    deadline.resolved_at = now
    if done is not None:
        deadline.outcome = done
        return 0
    deadline.outcome = NotificationEvent.LATE.value
    schedule = session.get(Schedule, deadline.schedule_id)
    if schedule is None:
        return 0
    rules = _rules(schedule.workflow, schedule)
    channels = rules.channels_for(NotificationEvent.LATE)
    if not channels:
        return 0
    latest = runs[0] if runs else None
    details = (
        _execution_details(latest, schedule.workflow, schedule)
        if latest is not None
        else {**_subject_details(schedule.workflow, schedule), "fire_time": deadline.fire_time,
              "status": "not started"}
    )
    details["threshold"] = f"late after {_human(deadline.due_at - deadline.fire_time)}"
    return enqueue(
        session, NotificationEvent.LATE, fire_time_subject(schedule.id, deadline.fire_time), channels, details,
        workflow_id=schedule.workflow_id, schedule_id=schedule.id,
        execution_id=latest.id if latest is not None else None, fire_time=deadline.fire_time,
    )


def _detect_late(session: Session, now: datetime) -> int:
    deadlines = list(
        session.scalars(
            select(LateDeadline)
            .where(LateDeadline.resolved_at.is_(None), LateDeadline.due_at <= now)
            .order_by(LateDeadline.due_at)
            .limit(DETECT_BATCH)
            .with_for_update(skip_locked=True)
        )
    )
    written = 0
    for deadline in deadlines:
        key = (deadline.schedule_id, deadline.fire_time)
        try:
            with session.begin_nested():  # one deadline's problem (unreadable rules) is its own
                written += _resolve_deadline(session, deadline, now)
        except Exception:
            log.exception("late check failed for one fire time", extra={"schedule_id": str(key[0])})
            # Settled as `error`, so it does not come first in every later tick.
            session.execute(
                LateDeadline.__table__.update()
                .where(LateDeadline.schedule_id == key[0], LateDeadline.fire_time == key[1])
                .values(resolved_at=now, outcome="error")
            )
    return written


def detect_late(session: Session, now: datetime) -> int:
    """Fire times past their `late_after` deadline without a successful run: one `late` each."""
    return guarded(session, "detect_late", lambda: _detect_late(session, now))


def _long_running_page(session: Session, after: tuple[datetime, uuid.UUID] | None) -> list[Any]:
    """Running runs whose rules may name `long_running_after`, oldest first, after `after`."""
    query = (
        select(Execution, Schedule)
        .join(Workflow, Workflow.id == Execution.workflow_id)
        .outerjoin(Schedule, Schedule.id == Execution.schedule_id)
        .where(
            Execution.status == ExecutionStatus.RUNNING.value,
            Execution.started_at.is_not(None),
            Workflow.definition.has_key("long_running_after") | Schedule.notify.has_key("long_running_after"),
        )
        .order_by(Execution.started_at, Execution.id)
        .limit(DETECT_BATCH)
    )
    if after is not None:
        query = query.where(tuple_(Execution.started_at, Execution.id) > tuple_(*after))
    return list(session.execute(query).all())


def _notify_long_running(session: Session, execution: Execution, schedule: Schedule | None, now: datetime) -> int:
    rules = _rules(execution.workflow, schedule)
    if rules.long_running_after is None or execution.started_at + rules.long_running_after > now:
        return 0
    channels = rules.channels_for(NotificationEvent.LONG_RUNNING)
    if not channels:
        return 0
    details = _execution_details(execution, execution.workflow, schedule)
    details["threshold"] = f"running longer than {_human(rules.long_running_after)}"
    return enqueue(  # once per run: the outbox's idempotency key absorbs the later ticks
        session, NotificationEvent.LONG_RUNNING, str(execution.id), channels, details,
        workflow_id=execution.workflow_id, schedule_id=execution.schedule_id, execution_id=execution.id,
        fire_time=execution.scheduled_for,
    )


def _detect_long_running(session: Session, now: datetime) -> int:
    """Every running run past its `long_running_after`: all of them are looked at, a page at a
    time (at most DETECT_PAGES pages), not only the first page of running runs."""
    written = 0
    after: tuple[datetime, uuid.UUID] | None = None
    for _ in range(DETECT_PAGES):
        rows = _long_running_page(session, after)
        for execution, schedule in rows:
            try:
                with session.begin_nested():  # one run's unreadable rules do not stop the others
                    written += _notify_long_running(session, execution, schedule, now)
            except Exception:
                log.exception("long-running check failed for one run", extra={"execution_id": str(execution.id)})
        if len(rows) < DETECT_BATCH:
            break
        after = (rows[-1][0].started_at, rows[-1][0].id)
    return written


def detect_long_running(session: Session, now: datetime) -> int:
    """Runs going past `long_running_after`: one `long_running` per execution."""
    return guarded(session, "detect_long_running", lambda: _detect_long_running(session, now))


def _human(duration: Any) -> str:
    seconds = int(duration.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


# -- the spawner's dead letters ---------------------------------------------------------------


def _as_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _dead_lettered(session: Session, body: str, reason: str, message_id: str) -> int:
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    fields = parsed if isinstance(parsed, dict) else {}
    workflow_id, schedule_id = _as_uuid(fields.get("workflow_id")), _as_uuid(fields.get("schedule_id"))
    schedule = session.get(Schedule, schedule_id) if schedule_id else None
    workflow = session.get(Workflow, workflow_id) if workflow_id else None
    if workflow is None and schedule is not None:
        workflow = schedule.workflow
    if workflow is None:
        log.info("dead-lettered message names no workflow: nobody to notify", extra={"message_id": message_id})
        return 0
    channels = _rules(workflow, schedule).channels_for(NotificationEvent.DEAD_LETTERED)
    if not channels:
        return 0
    dedup_key = fields.get("dedup_key") if isinstance(fields.get("dedup_key"), str) else None
    execution = (
        session.scalar(select(Execution).where(Execution.dedup_key == dedup_key)) if dedup_key else None
    )
    details = {
        **_subject_details(workflow, schedule),
        "reason": reason,
        "fire_time": fields.get("scheduled_for") if isinstance(fields.get("scheduled_for"), str) else None,
    }
    if execution is not None:
        details.update(_execution_details(execution, workflow, schedule))
    return enqueue(
        session, NotificationEvent.DEAD_LETTERED, dedup_key or f"message:{message_id}", channels, details,
        workflow_id=workflow.id, schedule_id=schedule.id if schedule else None,
        execution_id=execution.id if execution else None,
        fire_time=execution.scheduled_for if execution else None,
    )


def dead_lettered(session: Session, body: str, reason: str, message_id: str) -> int:
    """A message parked in the DLQ: one `dead_lettered` per channel of its workflow/schedule."""
    return guarded(session, f"dead_lettered {message_id}", lambda: _dead_lettered(session, body, reason, message_id))
