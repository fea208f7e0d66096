"""Notification fixtures: real HTTP and SMTP receivers on 127.0.0.1, channels, a keyring."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from services.core.crypto import generate_key, keyring_from_value
from services.core.db.session import session_factory
from services.notify.channels import set_channel, validate_channel
from services.notify.sender import Sender, SenderOptions

SECRET = "whsec-Tr0ub4dor-and-3"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        receiver: Receiver = self.server.receiver
        status = receiver.status
        if 200 <= status < 300:
            receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        # A failure names the path, as many servers do ("Cannot POST /hook"): a secret in the
        # address must not reach the notification's error through the reply.
        reply = b"ok" if status < 300 else f"unavailable: cannot POST {self.path}".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


@dataclass
class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records every POST it accepts.

    `stop()` closes the port (connection refused, like a receiver that is down); `start()` opens
    the same port again. `status` other than 2xx answers with that status and records nothing.
    """

    port: int = 0
    status: int = 200
    requests: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    #: The address's path: like a Slack webhook's, it holds a secret.
    path: str = "/hook/T0KEN-in-the-path-7f3a9c"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self) -> Receiver:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        server.receiver = self  # type: ignore[attr-defined]
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=5)
            self._server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def encryption_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = generate_key()
    monkeypatch.setenv("INTEGRATION_ENCRYPTION_KEY", key)
    return key


@pytest.fixture
def add_channel(db: str, encryption_key: str) -> Callable[[str, dict[str, Any]], None]:
    def add(name: str, document: dict[str, Any]) -> None:
        with session_factory(db)() as session, session.begin():
            set_channel(session, name, validate_channel(document), keyring_from_value(encryption_key))

    return add


@dataclass
class Clock:
    """The real time plus an offset tests advance (rows are written with the database's now)."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_sender(db: str, encryption_key: str, clock: Clock) -> Callable[..., Sender]:
    def make(**options: Any) -> Sender:
        after_send = options.pop("after_send", None)
        return Sender(
            session_factory(db),
            lambda: keyring_from_value(encryption_key),
            "https://console.example.test",
            SenderOptions(**{"timeout_seconds": 3.0, **options}),
            clock=clock,
            after_send=after_send,
        )

    return make
