"""The fire-time ledger has no foreign key to `schedules` (migration 0006, for the tick's write
rate): deleting a schedule, directly or by `apply --prune`, deletes its ledger with it, and the
migration round-trips."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, func, pool, select, text

from services.core.db.migrate import alembic_config
from services.core.db.models import Base, FireTime
from services.core.db.session import session_factory
from services.core.queue import Queue
from services.core.settings import sqlalchemy_url
from services.local.embedded import scratch_database
from tests.dispatcher.helpers import make_schedule, minutes, run_ticks

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def ledger_rows(db: str, schedule_id: str) -> int:
    with session_factory(db)() as session:
        return session.scalar(select(func.count()).where(FireTime.schedule_id == uuid.UUID(schedule_id))) or 0


def test_deleting_a_schedule_deletes_its_ledger(db, queues, wfctl) -> None:
    schedule_id = make_schedule(db, NOW)
    run_ticks(db, Queue(queues.client, queues.queue_url), minutes(NOW, NOW.replace(minute=4)))
    assert ledger_rows(db, schedule_id) == 3  # 10:01, 10:02, 10:03
    assert wfctl("schedules", "delete", "nightly").code == 0
    assert ledger_rows(db, schedule_id) == 0


def test_pruning_a_schedule_deletes_its_ledger(db, queues, wfctl, tmp_path) -> None:
    schedule_id = make_schedule(db, NOW)
    run_ticks(db, Queue(queues.client, queues.queue_url), minutes(NOW, NOW.replace(minute=4)))
    assert ledger_rows(db, schedule_id) == 3
    (tmp_path / "none.yaml").write_text("kind: Workflow\nname: other\nsteps: [{id: a, type: log, with: {message: hi}}]\n")
    assert wfctl("apply", "-f", str(tmp_path / "none.yaml"), "--prune").code == 0
    assert ledger_rows(db, schedule_id) == 0


def test_ledger_migration_matches_the_models_and_round_trips() -> None:
    with scratch_database(os.environ.get("TEST_DATABASE_URL"), prefix="wfr_mig") as url:
        engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
        orphan = uuid.uuid4()
        with engine.begin() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
            conn.execute(
                text("INSERT INTO fire_times (schedule_id, fire_time, decision, decided_at) "
                     "VALUES (:id, now(), 'sent', now())"),
                {"id": orphan},
            )
        command.downgrade(alembic_config(url), "0005_schedule_lifecycle")  # drops the orphan, adds the key
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM fire_times")) == 0
        command.upgrade(alembic_config(url), "head")
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        engine.dispose()
