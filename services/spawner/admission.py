"""Concurrency limits, pools and buffering overlap: which runs may hold a slot now (SPEC §4).

A run whose workflow has `concurrency: {limit: N}` or `pool: NAME`, or whose schedule's overlap
is `buffer_one`/`buffer_all`, is not launched straight from its message: it is first recorded
`queued` (the execution record is the durable queue; the message is then deleted), and an
admission pass moves queued runs to `starting`, oldest first, while their limits have room.
A slot is held by a run that is `starting` or `running`; it frees when the run ends in any way
(finished, cancelled, reconciled), which NOTIFYs the spawner (services.spawner.run_control).

Every decision is taken under one transaction-scoped advisory lock, so two spawner workers or
replicas never admit past a limit. `plan` is the rule, a pure function; the rest reads and
writes the rows it needs.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from services.core.db.models import (
    SLOT_STATUSES,
    Execution,
    ExecutionStatus,
    Overlap,
    Pool,
    Schedule,
    Workflow,
)
from services.core.executions import now_utc, transition

#: pg_advisory_xact_lock key of admission decisions (an arbitrary constant: "wfr" + 1).
ADMISSION_LOCK = 0x77667201
#: Queued runs looked at per pass (the oldest ones; a pass admits at most this many), and of
#: them at most MAX_PER_QUEUE of each (workflow, schedule).
MAX_CANDIDATES = 5000
MAX_PER_QUEUE = 100
BUFFERING = (Overlap.BUFFER_ONE.value, Overlap.BUFFER_ALL.value)
WAITING = "waiting for a slot"


def needs_admission(definition: dict[str, Any], overlap: str | None) -> bool:
    """Does a run of this workflow (and schedule overlap) go through the queue of admission?"""
    return bool(definition.get("concurrency") or definition.get("pool")) or overlap in BUFFERING


def workflow_limit(definition: dict[str, Any]) -> int | None:
    concurrency = definition.get("concurrency") or {}
    limit = concurrency.get("limit") if isinstance(concurrency, dict) else None
    return int(limit) if isinstance(limit, int) and not isinstance(limit, bool) else None


@dataclass(frozen=True)
class Candidate:
    """A queued run, with the limits that apply to it."""

    execution_id: uuid.UUID
    workflow_id: uuid.UUID
    workflow_name: str
    limit: int | None = None
    pool: str | None = None
    schedule_id: uuid.UUID | None = None
    schedule_name: str | None = None
    overlap: str | None = None

    @property
    def buffered(self) -> bool:
        return self.schedule_id is not None and self.overlap in BUFFERING


@dataclass
class Occupancy:
    """Slots held now: runs per workflow, per pool, and the schedules with a run holding one."""

    by_workflow: Counter[uuid.UUID] = field(default_factory=Counter)
    by_pool: Counter[str] = field(default_factory=Counter)
    schedules: set[uuid.UUID] = field(default_factory=set)


def plan(
    candidates: Iterable[Candidate], occupancy: Occupancy, pool_slots: dict[str, int]
) -> list[tuple[uuid.UUID, str | None]]:
    """For each candidate (oldest first): None to admit it, or why it waits.

    First come, first served per limit: once a run waits for a limit, no younger run admitted
    by this pass takes a slot of that same limit, so runs start in the order they were queued.
    """
    held_workflows: set[uuid.UUID] = set()
    held_pools: set[str] = set()
    held_schedules: set[uuid.UUID] = set()
    decisions: list[tuple[uuid.UUID, str | None]] = []
    for c in candidates:
        reason: str | None = None
        if c.limit is not None and (c.workflow_id in held_workflows or occupancy.by_workflow[c.workflow_id] >= c.limit):
            reason = f"concurrency limit {c.limit} of workflow {c.workflow_name} reached"
            held_workflows.add(c.workflow_id)
        elif c.pool is not None and c.pool not in pool_slots:
            reason = f"pool {c.pool} does not exist (wfctl pools set {c.pool} --slots N)"
        elif c.pool is not None and (c.pool in held_pools or occupancy.by_pool[c.pool] >= pool_slots[c.pool]):
            reason = f"pool {c.pool}: all {pool_slots[c.pool]} slot(s) in use"
            held_pools.add(c.pool)
        elif c.buffered and c.schedule_id is not None and (
            c.schedule_id in held_schedules or c.schedule_id in occupancy.schedules
        ):
            reason = f"overlap {c.overlap}: waiting for the previous run of schedule {c.schedule_name} to finish"
            held_schedules.add(c.schedule_id)
        if reason is None:
            occupancy.by_workflow[c.workflow_id] += 1
            if c.pool is not None:
                occupancy.by_pool[c.pool] += 1
            if c.buffered and c.schedule_id is not None:
                occupancy.schedules.add(c.schedule_id)
        decisions.append((c.execution_id, reason))
    return decisions


# -- the database shell ---------------------------------------------------------------------


def lock(session: Session) -> None:
    """Serialise admission decisions across workers and replicas (until the transaction ends)."""
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADMISSION_LOCK})


def enqueue(session: Session, execution_id: uuid.UUID, pool: str | None, overlap: str | None) -> str | None:
    """Put a pending run in the queue of admission; the caller then runs `promote` and commits.

    Returns the reason when the run is skipped instead: `buffer_one` keeps at most one run of a
    schedule waiting, so a second one is recorded `skipped` with why.
    """
    lock(session)
    if overlap == Overlap.BUFFER_ONE.value:
        schedule_id = session.scalar(select(Execution.schedule_id).where(Execution.id == execution_id))
        waiting = session.scalar(
            select(Execution.id)
            .where(
                Execution.schedule_id == schedule_id,
                Execution.status == ExecutionStatus.QUEUED.value,
                Execution.id != execution_id,
            )
            .limit(1)
        )
        if schedule_id is not None and waiting is not None:
            reason = f"skipped: overlap buffer_one: execution {waiting} of the same schedule is already waiting"
            transition(
                session, execution_id, [ExecutionStatus.PENDING], ExecutionStatus.SKIPPED,
                finished_at=now_utc(), error=reason,
            )
            return reason
    transition(
        session, execution_id, [ExecutionStatus.PENDING], ExecutionStatus.QUEUED, pool=pool, queued_reason=WAITING
    )
    return None


def _candidates(session: Session) -> list[Candidate]:
    """The queued runs one pass considers, oldest first: the oldest MAX_PER_QUEUE of each
    (workflow, schedule), so a long backlog of one workflow never hides another's runs, at most
    MAX_CANDIDATES in all. Oldest by fire time (a catch-up batch arrives in any order), else by
    arrival."""
    age = func.coalesce(Execution.scheduled_for, Execution.created_at)
    ranked = (
        select(
            Execution.id.label("id"),
            func.row_number()
            .over(partition_by=(Execution.workflow_id, Execution.schedule_id),
                  order_by=(age, Execution.created_at, Execution.id))
            .label("place"),
        )
        .where(Execution.status == ExecutionStatus.QUEUED.value)
        .subquery()
    )
    rows = session.execute(
        select(
            Execution.id, Execution.workflow_id, Workflow.name, Workflow.definition, Execution.pool,
            Execution.schedule_id, Schedule.name, Schedule.overlap,
        )
        .join(ranked, ranked.c.id == Execution.id)
        .join(Workflow, Workflow.id == Execution.workflow_id)
        .outerjoin(Schedule, Schedule.id == Execution.schedule_id)
        .where(ranked.c.place <= MAX_PER_QUEUE)
        .order_by(age, Execution.created_at, Execution.id)
        .limit(MAX_CANDIDATES)
    ).all()
    return [
        Candidate(
            execution_id=row[0], workflow_id=row[1], workflow_name=row[2], limit=workflow_limit(row[3] or {}),
            pool=row[4], schedule_id=row[5], schedule_name=row[6], overlap=row[7],
        )
        for row in rows
    ]


def _occupancy(session: Session, candidates: list[Candidate]) -> Occupancy:
    slot = [str(s) for s in SLOT_STATUSES]
    workflows = {c.workflow_id for c in candidates if c.limit is not None}
    pools = {c.pool for c in candidates if c.pool is not None}
    schedules = {c.schedule_id for c in candidates if c.buffered and c.schedule_id is not None}
    occupancy = Occupancy()
    if workflows:
        occupancy.by_workflow.update(
            dict(
                session.execute(
                    select(Execution.workflow_id, func.count())
                    .where(Execution.workflow_id.in_(workflows), Execution.status.in_(slot))
                    .group_by(Execution.workflow_id)
                ).all()
            )
        )
    if pools:
        occupancy.by_pool.update(
            dict(
                session.execute(
                    select(Execution.pool, func.count())
                    .where(Execution.pool.in_(pools), Execution.status.in_(slot))
                    .group_by(Execution.pool)
                ).all()
            )
        )
    if schedules:
        occupancy.schedules = set(
            session.scalars(
                select(Execution.schedule_id).where(Execution.schedule_id.in_(schedules), Execution.status.in_(slot))
            )
        )
    return occupancy


def promote(session: Session) -> list[uuid.UUID]:
    """One admission pass: queued runs that fit move to `starting` (oldest first); the others
    get the reason they wait. Returns the admitted ones, for the caller to launch after commit."""
    lock(session)
    candidates = _candidates(session)
    if not candidates:
        return []
    pools = {c.pool for c in candidates if c.pool is not None}
    slots = dict(session.execute(select(Pool.name, Pool.slots).where(Pool.name.in_(pools))).all()) if pools else {}
    admitted: list[uuid.UUID] = []
    now = now_utc()
    for execution_id, reason in plan(candidates, _occupancy(session, candidates), slots):
        if reason is None:
            if transition(
                session, execution_id, [ExecutionStatus.QUEUED], ExecutionStatus.STARTING,
                admitted_at=now, queued_reason=None,
            ):
                admitted.append(execution_id)
        else:
            session.execute(
                update(Execution)
                .where(
                    Execution.id == execution_id,
                    Execution.status == ExecutionStatus.QUEUED.value,
                    Execution.queued_reason.is_distinct_from(reason),
                )
                .values(queued_reason=reason)
                .execution_options(synchronize_session=False)
            )
    return admitted


def stranded(session: Session, older_than_seconds: float, now: datetime | None = None) -> list[uuid.UUID]:
    """Admitted runs whose Job was never recorded (a spawner died between admitting and
    launching): the caller launches them again (a launch is idempotent by Job name)."""
    cutoff = (now or now_utc()) - timedelta(seconds=older_than_seconds)
    return list(
        session.scalars(
            select(Execution.id).where(
                Execution.status == ExecutionStatus.STARTING.value,
                Execution.job_name.is_(None),
                Execution.admitted_at.is_not(None),
                Execution.admitted_at < cutoff,
            )
        )
    )
