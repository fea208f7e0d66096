"""A tiny HTTP API on 127.0.0.1 that the example workflows call, so the demo runs offline.

`/health` answers 200, `/items` a small JSON list, and `/flaky` fails twice (503) for every
success (200), so the retrying example shows its retries.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ITEMS = [
    {"id": 1, "name": "anvil", "stock": 3},
    {"id": 2, "name": "rocket skates", "stock": 0},
    {"id": 3, "name": "giant magnet", "stock": 7},
]


class _Handler(BaseHTTPRequestHandler):
    server: DemoServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return  # quiet: the platform's own view shows what matters

    def _send(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0]
        if path == "/health":
            self._send(200, {"status": "ok"})
        elif path == "/items":
            self._send(200, {"items": ITEMS})
        elif path == "/flaky":
            if self.server.next_flaky_call() % 3 == 0:
                self._send(200, {"status": "ok", "note": "third time lucky"})
            else:
                self._send(503, {"status": "unavailable"})
        else:
            self._send(404, {"error": f"no route {path}"})


class DemoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self._flaky_calls = 0
        self._lock = threading.Lock()

    def next_flaky_call(self) -> int:
        with self._lock:
            self._flaky_calls += 1
            return self._flaky_calls

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def start_demo_api(port: int = 0) -> DemoServer:
    server = DemoServer(port)
    threading.Thread(target=server.serve_forever, name="demo-api", daemon=True).start()
    return server
