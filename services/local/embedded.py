"""Embedded stand-ins for the real services, for one machine (docs/architecture.md) and for the tests.

PostgreSQL comes from `pgserver` (a real server binary in a data folder we own); SQS from moto's
server mode on 127.0.0.1 (real HTTP, the same boto3 calls as AWS). Both are optional
dependencies (`workflow-runtime[local]`), imported only when used.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.core.settings import DEFAULT_REGION


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_postgres(data_dir: Path, attempts: int = 5) -> tuple[Any, str]:
    """Start (or reuse) an embedded PostgreSQL in `data_dir`; returns (server, postgresql:// URL).

    The server is stopped when the returned object is cleaned up or the process exits. A server
    of a previous run that is still shutting down (a quick restart on a busy machine) is waited
    for: pgserver refuses a data folder whose server is not `ready`, so the start is retried.
    """
    import time

    import pgserver
    from pgserver.postgres_server import PostgresServer

    data_dir.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        try:
            server = pgserver.get_server(data_dir, cleanup_mode="stop")
            return server, server.get_uri()
        except (AssertionError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            # pgserver registers the instance before starting it; forget the broken one.
            PostgresServer._instances.pop(data_dir.resolve(), None)
            if attempt == attempts:
                log_file = data_dir / "log"
                raise RuntimeError(
                    f"embedded PostgreSQL did not start in {data_dir} ({type(error).__name__}); see {log_file}"
                ) from error
            time.sleep(2.0 * attempt)
    raise AssertionError("unreachable")


@dataclass
class EmbeddedSqs:
    """A moto SQS server on 127.0.0.1."""

    server: Any
    endpoint_url: str

    def stop(self) -> None:
        self.server.stop()


def start_sqs(port: int | None = None) -> EmbeddedSqs:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    chosen = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=chosen, verbose=False)
    server.start()
    return EmbeddedSqs(server=server, endpoint_url=f"http://127.0.0.1:{chosen}")


def create_queues(client: Any, name: str, max_receive_count: int = 5) -> tuple[str, str]:
    """Create (or find) a queue and its DLQ with a redrive policy; returns (queue_url, dlq_url)."""
    import json

    dlq_url = client.create_queue(
        QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": str(14 * 86400)}
    )["QueueUrl"]
    dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    queue_url = client.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": "120",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
            ),
        },
    )["QueueUrl"]
    return queue_url, dlq_url


DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_REGION": DEFAULT_REGION,
    "AWS_DEFAULT_REGION": DEFAULT_REGION,
}


@contextmanager
def scratch_database(server_url: str | None, prefix: str = "wfr_scratch") -> Iterator[str]:
    """A new, migrated database for tests and benchmarks, dropped afterwards.

    It is created on `server_url`'s server, or on an embedded server in a temporary folder when
    `server_url` is None, so parallel runs against one server never share tables.
    """
    import tempfile
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    from services.core.db.migrate import upgrade
    from services.core.db.session import engine_for, session_factory
    from services.core.settings import libpq_url

    with tempfile.TemporaryDirectory(prefix=f"{prefix}-pg-") as tmp:
        server = None
        if not server_url:
            server, server_url = start_postgres(Path(tmp) / "pgdata")
        admin = libpq_url(server_url)
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = make_url(admin).set(database=name).render_as_string(hide_password=False)
        try:
            upgrade(url)
            yield url
        finally:
            engine_for.cache_clear()
            session_factory.cache_clear()
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if server is not None:
                server.cleanup()
