"""The tables: workflows, schedules, the fire-time ledger, executions, step runs and integrations.

Every timestamp is a UTC `timestamptz`. Enumerations are stored as text with CHECK constraints so
the database itself refuses a status the code does not know.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Trigger(StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    RETRY = "retry"
    BACKFILL = "backfill"


class ExecutionStatus(StrEnum):
    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


TERMINAL_STATUSES: frozenset[str] = frozenset(
    {
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.FAILED,
        ExecutionStatus.TIMED_OUT,
        ExecutionStatus.CANCELLED,
        ExecutionStatus.SKIPPED,
    }
)
ACTIVE_STATUSES: frozenset[str] = frozenset(
    {ExecutionStatus.PENDING, ExecutionStatus.STARTING, ExecutionStatus.RUNNING}
)


class StepStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


class Catchup(StrEnum):
    LATEST = "latest"
    ALL = "all"
    NONE = "none"


class Overlap(StrEnum):
    ALLOW = "allow"
    SKIP = "skip"
    REPLACE = "replace"


class FireDecision(StrEnum):
    """What the dispatcher did with one fire time (the fire-time ledger)."""

    SENT = "sent"
    DROPPED = "dropped"


class FireReason(StrEnum):
    """Why a fire time was dropped (docs/schedules.md, Fire-time ledger)."""

    OUTSIDE_WINDOW = "outside_window"  # older than catchup_window_seconds when first seen
    CATCHUP_NONE = "catchup_none"  # missed under `catchup: none`
    SUPERSEDED_LATEST = "superseded_latest"  # an older missed time under `catchup: latest`
    PAUSED = "paused"  # passed while the schedule was paused
    EDITED = "edited"  # was due but not yet dispatched when the schedule was edited
    OVERLAP_SKIP = "overlap_skip"  # its run was skipped by `overlap: skip`
    OVERLAP_REPLACE = "overlap_replace"  # its run was cancelled by a newer one under `overlap: replace`
    BEFORE_START = "before_start"  # before the schedule's start_at (backfill)
    AFTER_END = "after_end"  # after the schedule's end_at (backfill)


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


def _uuid() -> uuid.UUID:
    return uuid.uuid4()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Workflow(Base):
    __tablename__ = "workflows"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=_uuid)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    # The validated, normalised definition (docs/workflows.md), as applied.
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    timeout_seconds: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Schedule(Base):
    __tablename__ = "schedules"
    __table_args__ = (
        CheckConstraint(_in("catchup", Catchup), name="catchup"),
        CheckConstraint(_in("overlap", Overlap), name="overlap"),
        CheckConstraint("jitter_seconds BETWEEN 0 AND 900", name="jitter"),
        CheckConstraint("catchup_window_seconds >= 0", name="catchup_window"),
        # Exactly one kind: cron expressions, an interval, or a one-off instant.
        CheckConstraint(
            "(cron IS NOT NULL)::int + (interval_seconds IS NOT NULL)::int + (run_at IS NOT NULL)::int = 1",
            name="kind",
        ),
        CheckConstraint("interval_seconds >= 60", name="interval"),
        CheckConstraint("end_at IS NULL OR start_at IS NULL OR end_at >= start_at", name="bounds"),
        # The dispatcher's hot query: enabled schedules by their next fire time.
        Index(
            "ix_schedules_due",
            "next_run_at",
            postgresql_where=text("enabled"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=_uuid)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    workflow_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("workflows.id", ondelete="RESTRICT"), index=True
    )
    # One or more 5-field expressions separated by "; " (see `cron_expressions`); None for the
    # other kinds.
    cron: Mapped[str | None] = mapped_column(String(1024))
    # `every`: seconds between fire times, counted in real time from `anchor_at`.
    interval_seconds: Mapped[int | None] = mapped_column(Integer)
    anchor_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # `at`: the single instant of a one-off schedule.
    run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Optional bounds of every kind (inclusive).
    start_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when no fire time is left (a one-off that fired, or past `end_at`).
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    input: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    catchup: Mapped[str] = mapped_column(String(16), default=Catchup.LATEST.value)
    catchup_window_seconds: Mapped[int] = mapped_column(Integer, default=86400)
    overlap: Mapped[str] = mapped_column(String(16), default=Overlap.ALLOW.value)
    jitter_seconds: Mapped[int] = mapped_column(Integer, default=0)
    # The earliest fire time not yet dispatched (UTC).
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    workflow: Mapped[Workflow] = relationship(lazy="joined")

    @property
    def cron_expressions(self) -> list[str]:
        return [part.strip() for part in (self.cron or "").split(";") if part.strip()]

    @property
    def kind(self) -> str:
        if self.interval_seconds is not None:
            return "every"
        if self.run_at is not None:
            return "at"
        return "cron"


class FireTime(Base):
    """The fire-time ledger: one row per fire time the dispatcher decided about.

    Append-only; pruned after FIRE_TIME_RETENTION_DAYS by the dispatcher tick.
    """

    __tablename__ = "fire_times"
    __table_args__ = (
        CheckConstraint(_in("decision", FireDecision), name="decision"),
        CheckConstraint(f"reason IS NULL OR {_in('reason', FireReason)}", name="reason"),
        Index("ix_fire_times_schedule_fire_time", "schedule_id", "fire_time"),
        Index("ix_fire_times_decided_at", "decided_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    schedule_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("schedules.id", ondelete="CASCADE")
    )
    fire_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    # The trigger of the message sent (schedule or backfill), or None when dropped.
    trigger: Mapped[str | None] = mapped_column(String(16))
    # The execution it became: the message's dedup key (the execution row appears when the
    # spawner inserts it) and, when known at decision time, the execution id.
    dedup_key: Mapped[str | None] = mapped_column(String(512))
    execution_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Execution(Base):
    __tablename__ = "executions"
    __table_args__ = (
        CheckConstraint(_in("status", ExecutionStatus), name="status"),
        CheckConstraint(_in("trigger", Trigger), name="trigger"),
        CheckConstraint("attempt >= 1", name="attempt"),
        # Overlap checks and the reconciler look for a schedule's / the platform's live runs.
        Index(
            "ix_executions_active",
            "schedule_id",
            "status",
            postgresql_where=text("status IN ('pending', 'starting', 'running')"),
        ),
        Index("ix_executions_workflow_created", "workflow_id", "created_at"),
        Index("ix_executions_created", "created_at"),
        # The dispatcher's retry query.
        Index(
            "ix_executions_retry_due",
            "next_retry_at",
            postgresql_where=text("next_retry_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=_uuid)
    workflow_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("workflows.id", ondelete="CASCADE")
    )
    schedule_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("schedules.id", ondelete="SET NULL")
    )
    trigger: Mapped[str] = mapped_column(String(16))
    scheduled_for: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dedup_key: Mapped[str] = mapped_column(String(512), unique=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    retry_of: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(String(16), default=ExecutionStatus.PENDING.value)
    input: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    output: Mapped[Any | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    job_name: Mapped[str | None] = mapped_column(String(63))
    # When the next attempt is due (set on failure while attempts remain; cleared once enqueued).
    next_retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    workflow: Mapped[Workflow] = relationship(lazy="joined")
    steps: Mapped[list[StepRun]] = relationship(
        back_populates="execution", order_by="StepRun.position", cascade="all, delete-orphan"
    )


class StepRun(Base):
    __tablename__ = "step_runs"
    __table_args__ = (
        UniqueConstraint("execution_id", "step_id"),
        CheckConstraint(_in("status", StepStatus), name="status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    execution_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("executions.id", ondelete="CASCADE")
    )
    step_id: Mapped[str] = mapped_column(String(128))
    position: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    output: Mapped[Any | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    execution: Mapped[Execution] = relationship(back_populates="steps")


class Integration(Base):
    __tablename__ = "integrations"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=_uuid)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    # The credential type (bearer, basic, header, query) is not secret; everything else is.
    type: Mapped[str] = mapped_column(String(16))
    # Authenticated ciphertext of the whole credential JSON under INTEGRATION_ENCRYPTION_KEY.
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
