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
