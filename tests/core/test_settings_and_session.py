"""The database session: plain URLs accepted, and timeouts that keep a service from hanging."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from services.core.db.session import STATEMENT_TIMEOUT_SECONDS, engine_for
from services.core.errors import ConfigError
from services.core.settings import normalize_database_url


@pytest.mark.parametrize("url", ["postgresql://u@h/db", "postgres://u@h/db", "postgresql+psycopg://u@h/db"])
def test_plain_postgresql_urls_select_psycopg(url: str) -> None:
    assert normalize_database_url(url) == "postgresql+psycopg://u@h/db"


def test_other_schemes_are_a_configuration_error() -> None:
    with pytest.raises(ConfigError):
        normalize_database_url("mysql://u@h/db")


def test_service_connections_carry_a_statement_timeout(db: str) -> None:
    with engine_for(db).connect() as conn:
        milliseconds = conn.execute(
            text("SELECT setting::int FROM pg_settings WHERE name = 'statement_timeout'")
        ).scalar_one()
    assert milliseconds == STATEMENT_TIMEOUT_SECONDS * 1000
