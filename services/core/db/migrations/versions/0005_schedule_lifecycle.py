"""schedule lifecycle: several cron expressions, interval, one-off, bounds, fire-time ledger

Revision ID: 0005_schedule_lifecycle
Revises: 0004_run_control
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005_schedule_lifecycle'
down_revision = '0004_run_control'
branch_labels = None
depends_on = None

REASONS = (
    "'outside_window', 'catchup_none', 'superseded_latest', 'paused', 'edited', 'overlap_skip', "
    "'overlap_replace', 'before_start', 'after_end'"
)


def upgrade() -> None:
    op.alter_column('schedules', 'cron', type_=sa.String(length=1024), existing_nullable=False, nullable=True)
    for name in ('anchor_at', 'run_at', 'start_at', 'end_at', 'completed_at'):
        op.add_column('schedules', sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    op.add_column('schedules', sa.Column('interval_seconds', sa.Integer(), nullable=True))
    op.create_check_constraint(
        op.f('ck_schedules_kind'),
        'schedules',
        '(cron IS NOT NULL)::int + (interval_seconds IS NOT NULL)::int + (run_at IS NOT NULL)::int = 1',
    )
    op.create_check_constraint(op.f('ck_schedules_interval'), 'schedules', 'interval_seconds >= 60')
    op.create_check_constraint(
        op.f('ck_schedules_bounds'), 'schedules', 'end_at IS NULL OR start_at IS NULL OR end_at >= start_at'
    )
    op.create_table(
        'fire_times',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('schedule_id', sa.UUID(), nullable=False),
        sa.Column('fire_time', sa.DateTime(timezone=True), nullable=False),
        sa.Column('decision', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.String(length=32), nullable=True),
        sa.Column('trigger', sa.String(length=16), nullable=True),
        sa.Column('dedup_key', sa.String(length=512), nullable=True),
        sa.Column('execution_id', sa.UUID(), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint("decision IN ('sent', 'dropped')", name=op.f('ck_fire_times_decision')),
        sa.CheckConstraint(f"reason IS NULL OR reason IN ({REASONS})", name=op.f('ck_fire_times_reason')),
        sa.ForeignKeyConstraint(
            ['schedule_id'], ['schedules.id'], name=op.f('fk_fire_times_schedule_id_schedules'), ondelete='CASCADE'
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_fire_times')),
    )
    op.create_index('ix_fire_times_schedule_fire_time', 'fire_times', ['schedule_id', 'fire_time'])
    op.create_index('ix_fire_times_decided_at', 'fire_times', ['decided_at'])


def downgrade() -> None:
    op.drop_table('fire_times')
    for name in ('bounds', 'interval', 'kind'):
        op.drop_constraint(op.f(f'ck_schedules_{name}'), 'schedules', type_='check')
    for name in ('interval_seconds', 'completed_at', 'end_at', 'start_at', 'run_at', 'anchor_at'):
        op.drop_column('schedules', name)
    op.execute("DELETE FROM schedules WHERE cron IS NULL")
    op.alter_column('schedules', 'cron', type_=sa.String(length=255), nullable=False)
