"""The tables: workflows, schedules, the fire-time ledger, executions, step runs, integrations,
notifications, API tokens and audit events.

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

from services.contract import (  # noqa: F401  (re-exported: the tables' vocabulary)
    ACTIVE_STATUSES,
    SLOT_STATUSES,
    TERMINAL_STATUSES,
    Catchup,
    ChannelType,
    ExecutionStatus,
    FireDecision,
    FireReason,
    NotificationEvent,
    NotificationStatus,
    Overlap,
    Role,
    StepStatus,
    Trigger,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


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
    # Notification rules added to the workflow's: {"notify": [...], "late_after", "long_running_after"}.
    notify: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
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

    Append-only; pruned after FIRE_TIME_RETENTION_DAYS by the dispatcher tick. No foreign key
    to `schedules`: checking one per row was 40 % of the ledger's write cost at a tick's volume;
    a schedule's rows are deleted with it (services.core.ledger.delete_fire_times).
    """

    __tablename__ = "fire_times"
    __table_args__ = (
        CheckConstraint(_in("decision", FireDecision), name="decision"),
        CheckConstraint(f"reason IS NULL OR {_in('reason', FireReason)}", name="reason"),
        Index("ix_fire_times_schedule_fire_time", "schedule_id", "fire_time"),
        Index("ix_fire_times_decided_at", "decided_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    schedule_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
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
            postgresql_where=text("status IN ('pending', 'queued', 'starting', 'running')"),
        ),
        # The admission pass: queued runs, oldest first.
        Index("ix_executions_queued", "created_at", postgresql_where=text("status = 'queued'")),
        # The spawner's safety sweep: running executions someone asked to cancel.
        Index(
            "ix_executions_cancel_requested",
            "cancel_requested_at",
            postgresql_where=text("cancel_requested_at IS NOT NULL AND status = 'running'"),
        ),
        Index("ix_executions_workflow_created", "workflow_id", "created_at"),
        Index("ix_executions_created", "created_at"),
        # The dispatcher's retry query.
        Index(
            "ix_executions_retry_due",
            "next_retry_at",
            postgresql_where=text("next_retry_at IS NOT NULL"),
        ),
        # Notification checks: the runs of a fire time (`late`), a schedule's last outcome and
        # whether a run was retried (`recovered`).
        Index("ix_executions_schedule_fire_time", "schedule_id", "scheduled_for"),
        Index("ix_executions_schedule_finished", "schedule_id", "finished_at",
              postgresql_where=text("finished_at IS NOT NULL")),
        Index("ix_executions_retry_of", "retry_of", postgresql_where=text("retry_of IS NOT NULL")),
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
    # Run control (docs/workflows.md): the execution this one re-runs, and from which step.
    rerun_of: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    rerun_from_step: Mapped[str | None] = mapped_column(String(128))
    # The pool the run draws a slot from (the workflow's `pool` when it was admitted).
    pool: Mapped[str | None] = mapped_column(String(253))
    # Why a `queued` run waits (which limit), and when it got its slot.
    queued_reason: Mapped[str | None] = mapped_column(Text)
    admitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Who asked to cancel, and when (the runner and the spawner act on it).
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested_by: Mapped[str | None] = mapped_column(String(253))
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
    # The stored output: bounded to 64 KiB (a preview marker beyond that).
    output: Mapped[Any | None] = mapped_column(JSONB)
    # The whole (redacted) output when `output` had to be cut, so a re-run from a later step
    # gives that step what the original run gave it.
    full_output: Mapped[Any | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    # Per-step retry: attempts made (0 for a reused step) and each failed attempt's error.
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    attempt_errors: Mapped[list[Any] | None] = mapped_column(JSONB)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    execution: Mapped[Execution] = relationship(back_populates="steps")


class Pool(Base):
    """A named number of slots shared by every workflow that says `pool: NAME`."""

    __tablename__ = "pools"
    __table_args__ = (CheckConstraint("slots >= 1", name="slots"),)

    name: Mapped[str] = mapped_column(String(253), primary_key=True)
    slots: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


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


class Channel(Base):
    """A named notification channel; like an integration, everything but the type is encrypted."""

    __tablename__ = "channels"
    __table_args__ = (CheckConstraint(_in("type", ChannelType), name="type"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=_uuid)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    type: Mapped[str] = mapped_column(String(16))
    # Authenticated ciphertext of the whole channel JSON under INTEGRATION_ENCRYPTION_KEY.
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Notification(Base):
    """The outbox: one row per (event, execution or fire time, channel), delivered at least once.

    Rows are written in the transaction of the change that causes them and carry no foreign keys,
    so deleting a workflow or schedule never loses (or blocks) a notification about it.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(_in("event", NotificationEvent), name="event"),
        CheckConstraint(_in("status", NotificationStatus), name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        # The sender's query: pending rows by when they are due.
        Index("ix_notifications_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        Index("ix_notifications_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # `<event>:<execution id or schedule id:fire time>:<channel>`; sent with every delivery.
    idempotency_key: Mapped[str] = mapped_column(String(600), unique=True)
    event: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(253))
    workflow_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    schedule_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    execution_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    fire_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What happened, as known when the event was written (names, status, error, attempt n of m).
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=NotificationStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LateDeadline(Base):
    """A fire time sent with a `late_after` rule: checked by the dispatcher once it is due."""

    __tablename__ = "late_deadlines"
    __table_args__ = (
        Index("ix_late_deadlines_due", "due_at", postgresql_where=text("resolved_at IS NULL")),
    )

    schedule_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("schedules.id", ondelete="CASCADE"), primary_key=True
    )
    fire_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # `late` when a notification was written, `succeeded`/`skipped`/`cancelled` otherwise.
    outcome: Mapped[str | None] = mapped_column(String(16))


class ApiToken(Base):
    """A named bearer token for the operator API and console; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint(_in("role", Role), name="role"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=_uuid)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    # hex SHA-256 of the token: the token has 256 bits of entropy, so no salt or slow hash is needed.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEvent(Base):
    """One change made through the API, the console or wfctl: who, what, which object, when."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_target", "target_kind", "target", "at"),
        Index("ix_audit_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(253))
    action: Mapped[str] = mapped_column(String(64))
    target_kind: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(253))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
