"""indexes for the notification checks on executions

`late`: the runs of one schedule's fire time (schedule_id, scheduled_for). `recovered`: a
schedule's runs by when they finished, and whether a run was retried (retry_of). Without them
each check scanned the executions table: about 20 ms per late deadline and 70 ms per finished
run at 300,000 executions, growing with the history.

Revision ID: 0007_notification_check_indexes
Revises: 0006_ledger_without_foreign_key
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007_notification_check_indexes'
down_revision = '0006_ledger_without_foreign_key'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_executions_schedule_fire_time', 'executions', ['schedule_id', 'scheduled_for'])
    op.create_index(
        'ix_executions_schedule_finished', 'executions', ['schedule_id', 'finished_at'],
        postgresql_where=sa.text('finished_at IS NOT NULL'),
    )
    op.create_index(
        'ix_executions_retry_of', 'executions', ['retry_of'], postgresql_where=sa.text('retry_of IS NOT NULL'),
    )


def downgrade() -> None:
    op.drop_index('ix_executions_retry_of', table_name='executions')
    op.drop_index('ix_executions_schedule_finished', table_name='executions')
    op.drop_index('ix_executions_schedule_fire_time', table_name='executions')
