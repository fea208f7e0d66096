"""A schedule's `overlap` setting (README, Schedules), like a CronJob's `concurrencyPolicy`:
`skip` and `replace` here; `buffer_one`/`buffer_all` queue runs (services.spawner.admission).

Decided under a row lock on the schedule, so two runs of one schedule spawned at the same moment
(by two workers or two replicas) see each other's decision instead of both skipping or both
replacing. A skipped or replaced run's fire time is recorded in the fire-time ledger as
dropped (`overlap_skip`, `overlap_replace`), so `catchup: all` or a backfill under these policies
never loses a run silently.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.db.models import (
    ACTIVE_STATUSES,
    Execution,
    ExecutionStatus,
    FireDecision,
    FireReason,
    Overlap,
    Schedule,
)
from services.core.executions import finish_execution, now_utc, transition
from services.core.ledger import record_fire_time
from services.spawner.jobs import job_name


@dataclass(frozen=True)
class OverlapDecision:
    skipped: bool = False
    #: This run must not start: a later run of its schedule replaced it (before or while it was
    #: being decided), or it is no longer pending.
    superseded: bool = False
    #: Jobs of the runs this one replaces; the caller deletes them before creating its own.
    jobs_to_delete: list[str] = field(default_factory=list)


def superseded_error(execution_id: uuid.UUID) -> str:
    return f"cancelled: superseded by execution {execution_id}, a later run of the same schedule"


def _run_order(scheduled_for: datetime | None, created_at: datetime) -> tuple[datetime, datetime]:
    """Which of two runs of a schedule is the later one: by fire time, then by arrival."""
    return (scheduled_for or created_at, created_at)


def replaced_error(execution_id: uuid.UUID) -> str:
    return f"cancelled: replaced by execution {execution_id} of the same schedule"


def _record_dropped(session: Session, execution: Execution, reason: FireReason) -> None:
    if execution.schedule_id is None or execution.scheduled_for is None:
        return
    record_fire_time(
        session,
        execution.schedule_id,
        execution.scheduled_for,
        FireDecision.DROPPED,
        reason,
        trigger=execution.trigger,
        dedup_key=execution.dedup_key,
        execution_id=execution.id,
    )


def apply_overlap(session: Session, execution: Execution) -> OverlapDecision:
    """Apply the schedule's policy to a pending execution; the caller commits."""
    if execution.schedule_id is None:
        return OverlapDecision()
    policy = session.scalar(select(Schedule.overlap).where(Schedule.id == execution.schedule_id).with_for_update())
    if policy is None or policy in (Overlap.ALLOW, Overlap.BUFFER_ONE, Overlap.BUFFER_ALL):
        return OverlapDecision()  # buffering is admission's business (services.spawner.admission)
    # Read again under the lock: another worker may have decided about this run meanwhile (a
    # later run of the schedule replaced it), and that decision stands.
    mine = session.execute(
        select(Execution.status, Execution.scheduled_for, Execution.created_at).where(Execution.id == execution.id)
    ).one()
    if mine.status != ExecutionStatus.PENDING.value:
        return OverlapDecision(superseded=True)
    others = list(
        session.execute(
            select(Execution.id, Execution.status, Execution.scheduled_for, Execution.created_at).where(
                Execution.schedule_id == execution.schedule_id,
                Execution.id != execution.id,
                Execution.status.in_([str(s) for s in ACTIVE_STATUSES]),
            )
        )
    )
    if policy == Overlap.SKIP:
        if not others:
            return OverlapDecision()
        other_id, other_status = others[0][:2]
        transition(
            session,
            execution.id,
            [ExecutionStatus.PENDING],
            ExecutionStatus.SKIPPED,
            finished_at=now_utc(),
            error=f"skipped: execution {other_id} of the same schedule is still {other_status}",
        )
        _record_dropped(session, execution, FireReason.OVERLAP_SKIP)
        return OverlapDecision(skipped=True)
    # replace: a later run of the schedule is already active (its message came first, or this
    # is a retry of an older fire time): this one is stale and never starts.
    order = _run_order(mine.scheduled_for, mine.created_at)
    later = [o for o in others if _run_order(o.scheduled_for, o.created_at) > order]
    if later:
        transition(
            session, execution.id, [ExecutionStatus.PENDING], ExecutionStatus.CANCELLED,
            finished_at=now_utc(), error=superseded_error(later[0].id),
        )
        _record_dropped(session, execution, FireReason.OVERLAP_REPLACE)
        return OverlapDecision(superseded=True)
    # Cancel the earlier ones now; a retried message also re-deletes the Jobs of the runs it
    # cancelled earlier, in case it died between the cancel and the delete.
    for other_id, *_ in others:
        if finish_execution(session, other_id, ExecutionStatus.CANCELLED, error=replaced_error(execution.id)):
            replaced = session.get(Execution, other_id)
            if replaced is not None:
                _record_dropped(session, replaced, FireReason.OVERLAP_REPLACE)
    already = session.scalars(
        select(Execution.id).where(
            Execution.schedule_id == execution.schedule_id,
            Execution.status == ExecutionStatus.CANCELLED.value,
            Execution.error == replaced_error(execution.id),
        )
    )
    return OverlapDecision(jobs_to_delete=sorted(job_name(i) for i in already))
