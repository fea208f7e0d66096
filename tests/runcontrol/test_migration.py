"""Migration 0004_run_control: the migrated schema is exactly the ORM's, and it downgrades and
upgrades again (rows using the new values are carried back to ones the old schema accepts)."""

from __future__ import annotations

import os
import uuid

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, pool, text

from services.core.db.migrate import alembic_config
from services.core.db.models import Base
from services.core.settings import sqlalchemy_url
from services.local.embedded import scratch_database


def test_run_control_migration_matches_the_models_and_round_trips():
    with scratch_database(os.environ.get("TEST_DATABASE_URL"), prefix="wfr_mig") as url:
        engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        workflow_id, execution_id = uuid.uuid4(), uuid.uuid4()
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO workflows (id, name, definition, timeout_seconds, version) "
                     "VALUES (:id, 'w', '{}', 60, 1)"),
                {"id": workflow_id},
            )
            conn.execute(
                text("INSERT INTO executions (id, workflow_id, trigger, dedup_key, attempt, status, input) "
                     "VALUES (:id, :w, 'rerun', 'rerun:x', 1, 'queued', '{}')"),
                {"id": execution_id, "w": workflow_id},
            )
        command.downgrade(alembic_config(url), "0003_console")
        with engine.connect() as conn:
            row = conn.execute(text("SELECT trigger, status FROM executions WHERE id = :id"), {"id": execution_id})
            assert tuple(row.one()) == ("manual", "cancelled")
        command.upgrade(alembic_config(url), "head")
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        engine.dispose()
