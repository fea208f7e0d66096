"""run control: queued/rerun/reused, cancel requests, re-runs, step attempts, pools, buffering overlap

Revision ID: 0004_run_control
Revises: 0003_console
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_run_control"
down_revision = "0003_console"
branch_labels = None
depends_on = None

OLD_EXECUTION_STATUSES = "'pending', 'starting', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'skipped'"
NEW_EXECUTION_STATUSES = (
    "'pending', 'queued', 'starting', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'skipped'"
)
OLD_TRIGGERS = "'schedule', 'manual', 'retry', 'backfill'"
NEW_TRIGGERS = "'schedule', 'manual', 'retry', 'backfill', 'rerun'"
OLD_STEP_STATUSES = "'running', 'succeeded', 'failed', 'skipped', 'timed_out', 'cancelled'"
NEW_STEP_STATUSES = "'running', 'succeeded', 'failed', 'skipped', 'timed_out', 'cancelled', 'reused'"
OLD_OVERLAP = "'allow', 'skip', 'replace'"
NEW_OVERLAP = "'allow', 'skip', 'replace', 'buffer_one', 'buffer_all'"


def _check(table: str, name: str, condition: str) -> None:
    op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
    op.create_check_constraint(op.f(f"ck_{table}_{name}"), table, condition)


def upgrade() -> None:
    op.create_table(
        "pools",
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("slots >= 1", name=op.f("ck_pools_slots")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_pools")),
    )
    op.add_column("executions", sa.Column("rerun_of", sa.UUID(), nullable=True))
    op.add_column("executions", sa.Column("rerun_from_step", sa.String(length=128), nullable=True))
    op.add_column("executions", sa.Column("pool", sa.String(length=253), nullable=True))
    op.add_column("executions", sa.Column("queued_reason", sa.Text(), nullable=True))
    op.add_column("executions", sa.Column("admitted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("executions", sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("executions", sa.Column("cancel_requested_by", sa.String(length=253), nullable=True))
    op.add_column("step_runs", sa.Column("full_output", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column("step_runs", sa.Column("attempts", sa.Integer(), server_default=sa.text("1"), nullable=False))
    op.add_column("step_runs", sa.Column("attempt_errors", postgresql.JSONB(astext_type=sa.Text()), nullable=True))

    _check("executions", "status", f"status IN ({NEW_EXECUTION_STATUSES})")
    _check("executions", "trigger", f"trigger IN ({NEW_TRIGGERS})")
    _check("step_runs", "status", f"status IN ({NEW_STEP_STATUSES})")
    _check("schedules", "overlap", f"overlap IN ({NEW_OVERLAP})")

    op.drop_index(
        "ix_executions_active", table_name="executions",
        postgresql_where=sa.text("status IN ('pending', 'starting', 'running')"),
    )
    op.create_index(
        "ix_executions_active", "executions", ["schedule_id", "status"], unique=False,
        postgresql_where=sa.text("status IN ('pending', 'queued', 'starting', 'running')"),
    )
    op.create_index(
        "ix_executions_queued", "executions", ["created_at"], unique=False,
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index(
        "ix_executions_cancel_requested", "executions", ["cancel_requested_at"], unique=False,
        postgresql_where=sa.text("cancel_requested_at IS NOT NULL AND status = 'running'"),
    )


def downgrade() -> None:
    # Rows using the new values cannot satisfy the old constraints: end them as the old schema can.
    op.execute("UPDATE executions SET status = 'cancelled' WHERE status = 'queued'")
    op.execute("UPDATE executions SET trigger = 'manual' WHERE trigger = 'rerun'")
    op.execute("UPDATE step_runs SET status = 'succeeded' WHERE status = 'reused'")
    op.execute("UPDATE schedules SET overlap = 'skip' WHERE overlap IN ('buffer_one', 'buffer_all')")
    op.drop_index(
        "ix_executions_cancel_requested", table_name="executions",
        postgresql_where=sa.text("cancel_requested_at IS NOT NULL AND status = 'running'"),
    )
    op.drop_index("ix_executions_queued", table_name="executions", postgresql_where=sa.text("status = 'queued'"))
    op.drop_index(
        "ix_executions_active", table_name="executions",
        postgresql_where=sa.text("status IN ('pending', 'queued', 'starting', 'running')"),
    )
    op.create_index(
        "ix_executions_active", "executions", ["schedule_id", "status"], unique=False,
        postgresql_where=sa.text("status IN ('pending', 'starting', 'running')"),
    )
    _check("schedules", "overlap", f"overlap IN ({OLD_OVERLAP})")
    _check("step_runs", "status", f"status IN ({OLD_STEP_STATUSES})")
    _check("executions", "trigger", f"trigger IN ({OLD_TRIGGERS})")
    _check("executions", "status", f"status IN ({OLD_EXECUTION_STATUSES})")
    for column in ("attempt_errors", "attempts", "full_output"):
        op.drop_column("step_runs", column)
    for column in (
        "cancel_requested_by", "cancel_requested_at", "admitted_at", "queued_reason", "pool",
        "rerun_from_step", "rerun_of",
    ):
        op.drop_column("executions", column)
    op.drop_table("pools")
