"""`/healthz`, `/readyz` and `/metrics` over plain HTTP, served from a daemon thread.

Liveness means the consume loop still turns and the spawner's database connections still answer
(a wedged loop or a wedged connection pool gets the pod restarted: the spawner keeps no state of
its own, so a restart loses nothing); readiness means SQS and Postgres answer (a spawner that
cannot reach them should not count as available).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from services.spawner.metrics import SpawnerMetrics

log = logging.getLogger(__name__)


class Heartbeat:
    """When the loop last completed an iteration (monotonic seconds)."""

    def __init__(self, max_age_seconds: float) -> None:
        self.max_age_seconds = max_age_seconds
        self._last = time.monotonic()

    def beat(self) -> None:
        self._last = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - self._last

    def alive(self) -> bool:
        return self.age() <= self.max_age_seconds


Check = Callable[[], str | None]  # None when fine, else a one-line reason


def _run_check(check: Check) -> str | None:
    try:
        return check()
    except Exception as error:  # a check that blows up means not healthy
        return f"{type(error).__name__}: {error}"


class HealthServer:
    def __init__(
        self,
        heartbeat: Heartbeat,
        readiness: Check,
        metrics: SpawnerMetrics,
        host: str = "0.0.0.0",
        port: int = 8080,
        liveness: Check = lambda: None,
    ) -> None:
        handler = _handler_class(heartbeat, readiness, liveness, metrics)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def _handler_class(
    heartbeat: Heartbeat, readiness: Check, liveness: Check, metrics: SpawnerMetrics
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                if not heartbeat.alive():
                    self._send(503, f"loop stalled for {heartbeat.age():.0f}s\n".encode())
                elif (problem := _run_check(liveness)) is not None:
                    self._send(503, f"{problem}\n".encode())
                else:
                    self._send(200, b"ok\n")
            elif path == "/readyz":
                problem = _run_check(readiness)
                self._send(200, b"ready\n") if problem is None else self._send(503, f"{problem}\n".encode())
            elif path == "/metrics":
                body, content_type = metrics.render()
                self._send(200, body, content_type)
            else:
                self._send(404, b"not found\n")

        def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # probes every few seconds: quiet
            log.debug("health %s", format % args)

    return Handler
