"""Run-control fixtures: a counting HTTP server on 127.0.0.1 (a free port) that can fail on cue."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest


@dataclass
class CountingServer:
    """`/count/NAME` answers `{"name", "hits"}`; `/fail/N/NAME` answers 503 N times, then 200;
    `/echo` answers the JSON body it got; `/big/NAME` answers ~100 KB of JSON. Every request's
    path and Idempotency-Key header are kept, in order."""

    url: str
    hits: Counter[str] = field(default_factory=Counter)
    requests: list[tuple[str, str | None, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, prefix: str) -> int:
        with self.lock:
            return sum(n for path, n in self.hits.items() if path.startswith(prefix))


def _handler(state: CountingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            path = urlsplit(self.path).path
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            with state.lock:
                state.hits[path] += 1
                hits = state.hits[path]
                state.requests.append((path, self.headers.get("Idempotency-Key"), body))
            if path.startswith("/fail/"):
                _, _, failures, name = path.split("/", 3)
                if hits <= int(failures):
                    self._reply(503, {"error": "try again", "hits": hits})
                else:
                    self._reply(200, {"name": name, "hits": hits})
            elif path.startswith("/count/"):
                self._reply(200, {"name": path.rsplit("/", 1)[1], "hits": hits})
            elif path.startswith("/big/"):
                self._reply(200, {"name": path.rsplit("/", 1)[1], "data": "x" * 100_000})
            elif path == "/echo":
                self._reply(200, {"got": body})
            else:
                self._reply(404, {"error": "not found"})

        do_GET = do_POST = do_PUT = _handle

    return Handler


@pytest.fixture
def counting_server() -> Iterator[CountingServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = CountingServer(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(state)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# The spawner's fixtures (a kmock emulator, a spawner in a thread) are shared with these tests.
from tests.spawner.conftest import emulator, emulator_server, start_spawner, workflow  # noqa: E402, F401
