"""Shared set-up for the benchmarks: a real Postgres database and an embedded SQS endpoint."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from services.core.db.migrate import upgrade
from services.core.embedded import DUMMY_AWS_ENV, create_queues, start_postgres, start_sqs
from services.core.queue import Queue, sqs_client


@contextmanager
def fresh_database() -> Iterator[str]:
    """A migrated database on BENCH_DATABASE_URL's (or TEST_DATABASE_URL's) server, else embedded."""
    base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    tmp = server = None
    if not base:
        tmp = tempfile.TemporaryDirectory(prefix="wfr-bench-")
        server, base = start_postgres(Path(tmp.name) / "pgdata")
    name = f"wfr_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    try:
        yield url
    finally:
        from services.core.db.session import engine_for

        engine_for.cache_clear()
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if server is not None:
            server.cleanup()
        if tmp is not None:
            tmp.cleanup()


@contextmanager
def embedded_queue() -> Iterator[tuple[Queue, Queue]]:
    os.environ.update({k: os.environ.get(k, v) for k, v in DUMMY_AWS_ENV.items()})
    sqs = start_sqs()
    try:
        client = sqs_client(DUMMY_AWS_ENV["AWS_REGION"], sqs.endpoint_url)
        queue_url, dlq_url = create_queues(client, f"bench-{uuid.uuid4().hex[:8]}")
        yield Queue(client, queue_url), Queue(client, dlq_url)
    finally:
        sqs.stop()
