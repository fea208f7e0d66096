"""The http step (issue 15): the URL's own query string is merged, not dropped, and
`timeout_seconds` bounds the whole request even when a server trickles bytes."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.runtime.test_http_and_integrations import key, set_integration

__all__ = ["key"]


def test_url_query_is_merged_with_query_and_a_query_integration(
    db, wfctl, tmp_path, key, run_workflow, http_server
) -> None:
    set_integration(wfctl, tmp_path, "api-query", {"type": "query", "name": "api_key", "value": "k-1"})
    workflow = f"""
name: merge
steps:
  - {{id: plain, type: http, with: {{url: "{http_server.url}/echo?a=1&b=2", query: {{c: 3}}}}}}
  - {{id: auth, type: http, integration: api-query, with: {{url: "{http_server.url}/echo?a=1"}}}}
  - {{id: both, type: http, integration: api-query, with: {{url: "{http_server.url}/echo?a=1&a=2", query: {{d: x y}}}}}}
  - {{id: override, type: http, with: {{url: "{http_server.url}/echo?page=1&keep=yes", query: {{page: 2}}}}}}
"""
    code, execution, steps = run_workflow(workflow, INTEGRATION_ENCRYPTION_KEY=key)
    assert code == 0, execution.error
    queries = [r.query for r in http_server.requests]
    assert queries[0] == {"a": ["1"], "b": ["2"], "c": ["3"]}
    assert queries[1] == {"a": ["1"], "api_key": ["k-1"]}
    assert queries[2] == {"a": ["1", "2"], "d": ["x y"], "api_key": ["k-1"]}
    assert queries[3] == {"page": ["2"], "keep": ["yes"]}


@pytest.fixture
def trickling_server() -> Iterator[tuple[str, threading.Event]]:
    """Answers every request one byte every 0.1 s for ever (well within any read timeout)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    stop = threading.Event()

    def trickle(conn: socket.socket, body_only: bool) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"
        data = (b"" if body_only else b"") + head
        try:
            conn.recv(65536)
            if body_only:
                conn.sendall(head)
                data = b"x" * 100000
            for index in range(100000):  # bounded: ~10,000 s at most, stopped by the fixture
                if stop.is_set():
                    break
                conn.sendall(data[index : index + 1] or b"x")
                time.sleep(0.1)
        except OSError:
            pass
        finally:
            conn.close()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            path_body = conn.recv(65536, socket.MSG_PEEK)
            body_only = b"/body" in path_body
            threading.Thread(target=trickle, args=(conn, body_only), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", stop
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


@pytest.mark.parametrize("path", ["/headers", "/body"])
def test_timeout_bounds_a_server_trickling_bytes(run_workflow, trickling_server, path: str) -> None:
    url, _ = trickling_server
    started = time.monotonic()
    code, execution, steps = run_workflow(
        f"name: trickle\nsteps: [{{id: get, type: http, with: {{url: '{url}{path}', timeout_seconds: 1}}}}]"
    )
    elapsed = time.monotonic() - started
    assert code == 1
    assert execution.error == f"step 'get' failed: GET {url}{path} timed out after 1s"
    assert steps[0].status == "failed"
    assert elapsed < 8, elapsed  # the server would trickle for minutes


def test_header_names_ending_in_a_newline_are_refused(run_workflow, http_server) -> None:
    step = {"id": "get", "type": "http", "with": {"url": f"{http_server.url}/echo", "headers": {"X-A\n": "b"}}}
    code, execution, _ = run_workflow(json.dumps({"name": "hdr", "steps": [step]}))
    assert code == 1 and "is not a valid HTTP header name" in execution.error, execution.error
    assert http_server.requests == []
