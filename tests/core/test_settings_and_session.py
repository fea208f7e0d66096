"""The database session: plain URLs accepted, and timeouts that keep a service from hanging."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from services.core.db.session import STATEMENT_TIMEOUT_SECONDS, engine_for
from services.core.errors import ConfigError
from services.core.settings import Settings, libpq_url, sqlalchemy_url


@pytest.mark.parametrize("url", ["postgresql://u@h/db", "postgres://u@h/db", "postgresql+psycopg://u@h/db"])
def test_plain_postgresql_urls_are_kept_raw_and_adapted_per_driver(url: str) -> None:
    assert Settings.from_env({"DATABASE_URL": url}).require_database_url() == url
    assert sqlalchemy_url(url) == "postgresql+psycopg://u@h/db"
    assert libpq_url(url) == "postgresql://u@h/db"


def test_other_schemes_are_a_configuration_error() -> None:
    with pytest.raises(ConfigError):
        Settings.from_env({"DATABASE_URL": "mysql://u@h/db"}).require_database_url()


def test_service_connections_carry_a_statement_timeout(db: str) -> None:
    with engine_for(db).connect() as conn:
        milliseconds = conn.execute(
            text("SELECT setting::int FROM pg_settings WHERE name = 'statement_timeout'")
        ).scalar_one()
    assert milliseconds == STATEMENT_TIMEOUT_SECONDS * 1000


def test_connections_name_their_process_for_pg_stat_activity(db: str) -> None:
    import uuid

    from services.contract import SPAWNER_APPLICATION_NAME
    from services.runtime.store import RunStore

    with engine_for(db, SPAWNER_APPLICATION_NAME).connect() as conn:
        assert conn.execute(text("SELECT current_setting('application_name')")).scalar_one() == "wfr-spawner"
    with engine_for(db).connect() as conn:
        assert conn.execute(text("SELECT current_setting('application_name')")).scalar_one() == "wfctl"
    execution_id = uuid.uuid4()
    with RunStore.connect(db, execution_id) as store:
        row = store._conn.execute("SELECT current_setting('application_name')").fetchone()
    assert row is not None and row[0] == f"wfr-runner {execution_id}"
