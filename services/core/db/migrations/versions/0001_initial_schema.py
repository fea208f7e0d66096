"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 18:27:07.282368
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('integrations',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_integrations')),
    sa.UniqueConstraint('name', name=op.f('uq_integrations_name'))
    )
    op.create_table('workflows',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('definition', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('timeout_seconds', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workflows')),
    sa.UniqueConstraint('name', name=op.f('uq_workflows_name'))
    )
    op.create_table('schedules',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('workflow_id', sa.UUID(), nullable=False),
    sa.Column('cron', sa.String(length=255), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('input', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('catchup', sa.String(length=16), nullable=False),
    sa.Column('catchup_window_seconds', sa.Integer(), nullable=False),
    sa.Column('overlap', sa.String(length=16), nullable=False),
    sa.Column('jitter_seconds', sa.Integer(), nullable=False),
    sa.Column('next_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("catchup IN ('latest', 'all', 'none')", name=op.f('ck_schedules_catchup')),
    sa.CheckConstraint("overlap IN ('allow', 'skip', 'replace')", name=op.f('ck_schedules_overlap')),
    sa.CheckConstraint('catchup_window_seconds >= 0', name=op.f('ck_schedules_catchup_window')),
    sa.CheckConstraint('jitter_seconds BETWEEN 0 AND 900', name=op.f('ck_schedules_jitter')),
    sa.ForeignKeyConstraint(['workflow_id'], ['workflows.id'], name=op.f('fk_schedules_workflow_id_workflows'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedules')),
    sa.UniqueConstraint('name', name=op.f('uq_schedules_name'))
    )
    op.create_index('ix_schedules_due', 'schedules', ['next_run_at'], unique=False, postgresql_where=sa.text('enabled'))
    op.create_index(op.f('ix_schedules_workflow_id'), 'schedules', ['workflow_id'], unique=False)
    op.create_table('executions',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('workflow_id', sa.UUID(), nullable=False),
    sa.Column('schedule_id', sa.UUID(), nullable=True),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('scheduled_for', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dedup_key', sa.String(length=512), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('retry_of', sa.UUID(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('input', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('output', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('job_name', sa.String(length=63), nullable=True),
    sa.Column('next_retry_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'starting', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'skipped')", name=op.f('ck_executions_status')),
    sa.CheckConstraint("trigger IN ('schedule', 'manual', 'retry', 'backfill')", name=op.f('ck_executions_trigger')),
    sa.CheckConstraint('attempt >= 1', name=op.f('ck_executions_attempt')),
    sa.ForeignKeyConstraint(['schedule_id'], ['schedules.id'], name=op.f('fk_executions_schedule_id_schedules'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['workflow_id'], ['workflows.id'], name=op.f('fk_executions_workflow_id_workflows'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_executions')),
    sa.UniqueConstraint('dedup_key', name=op.f('uq_executions_dedup_key'))
    )
    op.create_index('ix_executions_active', 'executions', ['schedule_id', 'status'], unique=False, postgresql_where=sa.text("status IN ('pending', 'starting', 'running')"))
    op.create_index('ix_executions_created', 'executions', ['created_at'], unique=False)
    op.create_index('ix_executions_retry_due', 'executions', ['next_retry_at'], unique=False, postgresql_where=sa.text('next_retry_at IS NOT NULL'))
    op.create_index('ix_executions_workflow_created', 'executions', ['workflow_id', 'created_at'], unique=False)
    op.create_table('step_runs',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('execution_id', sa.UUID(), nullable=False),
    sa.Column('step_id', sa.String(length=128), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('output', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('running', 'succeeded', 'failed', 'skipped', 'timed_out', 'cancelled')", name=op.f('ck_step_runs_status')),
    sa.ForeignKeyConstraint(['execution_id'], ['executions.id'], name=op.f('fk_step_runs_execution_id_executions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_step_runs')),
    sa.UniqueConstraint('execution_id', 'step_id', name=op.f('uq_step_runs_execution_id_step_id'))
    )



def downgrade() -> None:

    op.drop_table('step_runs')
    op.drop_index('ix_executions_workflow_created', table_name='executions')
    op.drop_index('ix_executions_retry_due', table_name='executions', postgresql_where=sa.text('next_retry_at IS NOT NULL'))
    op.drop_index('ix_executions_created', table_name='executions')
    op.drop_index('ix_executions_active', table_name='executions', postgresql_where=sa.text("status IN ('pending', 'starting', 'running')"))
    op.drop_table('executions')
    op.drop_index(op.f('ix_schedules_workflow_id'), table_name='schedules')
    op.drop_index('ix_schedules_due', table_name='schedules', postgresql_where=sa.text('enabled'))
    op.drop_table('schedules')
    op.drop_table('workflows')
    op.drop_table('integrations')

