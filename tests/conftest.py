"""Shared fixtures: a real PostgreSQL database and a real SQS endpoint (moto server) per session.

PostgreSQL: `TEST_DATABASE_URL` names a server to use; a fresh database is created on it for this
session (so parallel runs never collide) and dropped afterwards. Without it, an embedded server
(pgserver) is started in a temporary folder.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.core.db.models import Base
from services.core.db.session import engine_for, session_factory
from services.local.embedded import DUMMY_AWS_ENV, create_queues, scratch_database, start_sqs


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `cluster` need a real cluster: they run only when KUBECONFIG is set."""
    if os.environ.get("KUBECONFIG"):
        return
    skip = pytest.mark.skip(reason="needs a real cluster (set KUBECONFIG)")
    for item in items:
        if "cluster" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A migrated, empty database for this test session (see `scratch_database`)."""
    with scratch_database(os.environ.get("TEST_DATABASE_URL"), prefix="wfr_test") as url:
        yield url


@pytest.fixture
def db(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An emptied database (every table truncated), also exported as DATABASE_URL."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine_for(database_url).begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    monkeypatch.setenv("DATABASE_URL", database_url)
    return database_url


@pytest.fixture
def session(db: str) -> Iterator[Session]:
    with session_factory(db)() as s:
        yield s


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[str]:
    """moto's SQS server on 127.0.0.1, reached over HTTP like AWS."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    previous = {key: os.environ.get(key) for key in DUMMY_AWS_ENV}
    os.environ.update(DUMMY_AWS_ENV)
    embedded = start_sqs()
    try:
        yield embedded.endpoint_url
    finally:
        embedded.stop()
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class Queues:
    client: Any
    queue_url: str
    dlq_url: str
    endpoint_url: str

    def drain(self, url: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Receive and delete every visible message (bounded), returning the raw messages."""
        url = url or self.queue_url
        messages: list[dict[str, Any]] = []
        for _ in range(limit // 10 + 1):
            batch = self.client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
            if not batch:
                break
            messages.extend(batch)
            self.client.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
            )
        return messages


@pytest.fixture
def queues(sqs_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Queues:
    """A fresh queue and DLQ (maxReceiveCount 3), exported as QUEUE_URL / DLQ_URL."""
    client = boto3.client("sqs", endpoint_url=sqs_endpoint, region_name=DUMMY_AWS_ENV["AWS_REGION"])
    queue_url, dlq_url = create_queues(client, f"wfr-{uuid.uuid4().hex[:10]}", max_receive_count=3)
    monkeypatch.setenv("QUEUE_URL", queue_url)
    monkeypatch.setenv("DLQ_URL", dlq_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", sqs_endpoint)
    for key, value in DUMMY_AWS_ENV.items():
        monkeypatch.setenv(key, value)
    return Queues(client=client, queue_url=queue_url, dlq_url=dlq_url, endpoint_url=sqs_endpoint)


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        import json

        return json.loads(self.out)


@pytest.fixture
def wfctl(capsys: pytest.CaptureFixture[str]) -> Any:
    """Run `wfctl ARGS…` in-process with the test's environment; returns a CliResult."""
    from services.cli.main import main

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code=code, out=captured.out, err=captured.err)

    return invoke
