"""Engines and sessions: one engine per database URL per process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from services.core.settings import sqlalchemy_url

CONNECT_TIMEOUT_SECONDS = 10
STATEMENT_TIMEOUT_SECONDS = 60


@lru_cache(maxsize=8)
def engine_for(database_url: str) -> Engine:
    """A pooled engine; `pool_pre_ping` survives a Postgres restart under a long-lived spawner.

    A connect timeout keeps an unreachable database from hanging a worker (or a CLI command)
    for minutes in the kernel's TCP retries, and a statement timeout bounds a query stuck on a
    lock or a dead connection, so a spawner worker cannot hang forever while its loop still looks
    healthy. (Migrations use their own connection, without the statement timeout.)
    """
    return create_engine(
        sqlalchemy_url(database_url),
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "options": f"-c statement_timeout={STATEMENT_TIMEOUT_SECONDS * 1000}",
        },
    )


@lru_cache(maxsize=8)
def session_factory(database_url: str) -> sessionmaker[Session]:
    return sessionmaker(engine_for(database_url), expire_on_commit=False)


@contextmanager
def session_scope(database_url: str) -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    session = session_factory(database_url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
