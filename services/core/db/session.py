"""Engines and sessions: one engine per database URL (and role) per process.

Every connection names its process in `application_name` (`wfr-dispatcher`, `wfr-spawner`,
`wfr-runner <execution-id>`, `wfctl`), so an operator looking at `pg_stat_activity` sees who holds
a connection or a lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from services.contract import CLI_APPLICATION_NAME
from services.core.settings import sqlalchemy_url

CONNECT_TIMEOUT_SECONDS = 10
STATEMENT_TIMEOUT_SECONDS = 60


@lru_cache(maxsize=8)
def engine_for(database_url: str, application_name: str = CLI_APPLICATION_NAME, pre_ping: bool = True) -> Engine:
    """A pooled engine; `pool_pre_ping` survives a Postgres restart under a long-lived process.

    `pre_ping=False` is for a hot path that handles a dead connection itself (the spawner's
    message handler runs its unit of work again): the ping is a round trip per checkout.

    A connect timeout keeps an unreachable database from hanging a worker (or a CLI command)
    for minutes in the kernel's TCP retries, and a statement timeout bounds a query stuck on a
    lock or a dead connection, so a spawner worker cannot hang forever while its loop still looks
    healthy. (Migrations use their own connection, without the statement timeout.)
    """
    return create_engine(
        sqlalchemy_url(database_url),
        pool_pre_ping=pre_ping,
        pool_size=10,
        max_overflow=10,
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "options": f"-c statement_timeout={STATEMENT_TIMEOUT_SECONDS * 1000}",
            "application_name": application_name[:63],
        },
    )


@lru_cache(maxsize=8)
def session_factory(
    database_url: str, application_name: str = CLI_APPLICATION_NAME, pre_ping: bool = True
) -> sessionmaker[Session]:
    return sessionmaker(engine_for(database_url, application_name, pre_ping), expire_on_commit=False)


@contextmanager
def session_scope(database_url: str, application_name: str = CLI_APPLICATION_NAME) -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    session = session_factory(database_url, application_name)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
