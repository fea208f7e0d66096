"""What every command needs from the environment: the database and the queue."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from services.core.db.session import session_scope
from services.core.queue import Queue, sqs_client
from services.core.settings import Settings


def settings() -> Settings:
    return Settings.from_env()


@contextmanager
def database() -> Iterator[Session]:
    with session_scope(settings().require_database_url()) as session:
        yield session


def work_queue() -> Queue:
    current = settings()
    return Queue(sqs_client(current.aws_region, current.aws_endpoint_url), current.require_queue_url())


def dead_letter_queue() -> Queue:
    current = settings()
    return Queue(sqs_client(current.aws_region, current.aws_endpoint_url), current.require_dlq_url())
