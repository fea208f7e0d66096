"""Runtime fixtures: workflows and executions in the test database, and a local HTTP server."""

from __future__ import annotations

import functools
import gzip
import json
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.orm import Session

from services.core.db.models import Execution, StepRun
from services.core.db.session import session_factory
from services.core.workflows import apply_workflow, parse_workflow
from services.runtime.runner import execute


@dataclass
class Seeded:
    workflow_id: uuid.UUID
    execution_id: uuid.UUID


def seed(db: str, workflow_yaml: str, input: dict[str, Any] | None = None, status: str = "starting") -> Seeded:
    """Apply a workflow and insert one execution of it, as the spawner would."""
    with session_factory(db)() as session, session.begin():
        workflow, _ = apply_workflow(session, parse_workflow(workflow_yaml))
        execution = Execution(
            workflow_id=workflow.id,
            trigger="manual",
            dedup_key=f"manual:{uuid.uuid4()}",
            attempt=1,
            status=status,
            input=input or {},
        )
        session.add(execution)
        session.flush()
        return Seeded(workflow.id, execution.id)


def runner_env(db: str, seeded: Seeded, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": db,
        "WORKFLOW_ID": str(seeded.workflow_id),
        "EXECUTION_ID": str(seeded.execution_id),
        **extra,
    }


def load(db: str, execution_id: uuid.UUID) -> tuple[Execution, list[StepRun]]:
    with session_factory(db)() as session:
        execution = session.get(Execution, execution_id)
        assert execution is not None
        steps = list(execution.steps)
        session.expunge_all()
        return execution, steps


@pytest.fixture
def run_workflow(db: str) -> Callable[..., tuple[int, Execution, list[StepRun]]]:
    """Seed a workflow + execution, run the runner in-process, return (exit, execution, steps)."""

    def invoke(workflow_yaml: str, input: dict[str, Any] | None = None, registry: Any = None, **env: str):
        seeded = seed(db, workflow_yaml, input)
        code = execute(runner_env(db, seeded, **env), registry=registry)
        execution, steps = load(db, seeded.execution_id)
        return code, execution, steps

    return invoke


@functools.cache
def compressed_zeros(layers: int, size: int = 100 * 1024 * 1024) -> bytes:
    """`size` zero bytes gzip-compressed `layers` times (built in 1 MiB pieces)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    piece = bytes(1024 * 1024)
    data = b"".join(compressor.compress(piece) for _ in range(size // len(piece))) + compressor.flush()
    for _ in range(layers - 1):
        data = gzip.compress(data)
    return data


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpServer:
    url: str
    requests: list[Recorded] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _reply(self, status: int, body: bytes, content_type: str = "application/json", extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        record = Recorded(self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()), body)
        self.server.recorded.append(record)
        if parts.path == "/items":
            self._reply(200, json.dumps({"items": [1, 2, 3]}).encode())
        elif parts.path == "/echo":
            payload = {"method": self.command, "query": record.query, "headers": record.headers, "body": body.decode()}
            self._reply(200, json.dumps(payload).encode(), extra={"X-Echo-Auth": self.headers.get("Authorization", "")})
        elif parts.path.startswith("/status/"):
            self._reply(int(parts.path.rsplit("/", 1)[1]), b'{"error": "nope"}')
        elif parts.path == "/text":
            self._reply(200, b"plain words", content_type="text/plain")
        elif parts.path == "/big":
            self._reply(200, json.dumps({"data": "x" * 100_000}).encode())
        elif parts.path == "/redirect-metadata":
            self._reply(302, b"", extra={"Location": "http://169.254.169.254/latest/meta-data/"})
        elif parts.path == "/redirect":
            self._reply(302, b"", extra={"Location": record.query["to"][0]})
        elif parts.path == "/reject":  # a 401 quoting the credential just before the error snippet ends
            echoed = "x" * 183 + self.headers.get("Authorization", "")
            self._reply(401, echoed.encode(), content_type="text/plain")
        elif parts.path.startswith("/bomb/"):  # a small body that inflates to 100 MiB of zeros
            layers = int(parts.path.rsplit("/", 1)[1])
            self._reply(200, compressed_zeros(layers), content_type="text/plain",
                        extra={"Content-Encoding": ", ".join(["gzip"] * layers)})
        else:
            self._reply(404, b'{"error": "not found"}')

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    """A stdlib HTTP server on 127.0.0.1 recording every request."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.recorded = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield HttpServer(url=f"http://127.0.0.1:{server.server_address[1]}", requests=server.recorded)  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def session_for(db: str) -> Session:
    return session_factory(db)()
