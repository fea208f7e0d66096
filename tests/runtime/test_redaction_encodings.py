"""Redaction of every promised encoding (docs/workflows.md, "What is redacted"), end to end.

A real HTTP server on 127.0.0.1 echoes each credential it receives in every encoding the docs
promise; the run stores the responses as step outputs, logs them, and fails quoting them. Then
the whole database (every row of every table, as Postgres renders it and as Python decodes it)
and every log line (formatted by the runner's own JSON formatter, and every record's fields)
are scanned for any of those encodings. The encodings are listed here independently of the
implementation: this test is the promise.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

import pytest
from sqlalchemy import text

from services.core.db.models import Base
from services.core.db.session import engine_for
from services.core.logs import JsonFormatter
from tests.runtime.test_http_and_integrations import key, set_integration

__all__ = ["key"]

# Every character class that makes encodings differ: '/', '+', '=', space, quotes, '<', '&',
# non-ASCII (only where the credential can carry it: a query value, a basic password).
CREDENTIALS = {
    "bearer": {"type": "bearer", "token": "tok_Ab/Cd+Ef=Gh12<&>'x\"y"},
    "basic": {"type": "basic", "username": "user/7c+1e", "password": "pw Bä/sic+91=b2 é"},
    "header": {"type": "header", "name": "X-Api-Key", "value": "hdr/VAL+UE=33<d0>&"},
    "query": {"type": "query", "name": "api_key", "value": "qry/VALUE+5e&x=ü é\u2603"},
}


def _lower_hex(form: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), form)


def promised_encodings(secret: str) -> dict[str, str]:
    """Each encoding docs/workflows.md promises to redact, by name."""
    url = {
        "quote": quote(secret, safe=""),
        "quote-keep-slash": quote(secret),
        "quote_plus": quote_plus(secret),
        "quote_plus-keep-slash": quote_plus(secret, safe="/"),
    }
    forms = {"raw": secret, **url}
    forms |= {f"{name}-lowercase-hex": _lower_hex(value) for name, value in url.items()}
    forms |= {f"double-{name}": quote(value, safe="") for name, value in url.items()}
    forms |= {f"double-{name}-lowercase-hex": quote(_lower_hex(value), safe="") for name, value in url.items()}
    ascii_json = json.dumps(secret)[1:-1]
    utf8_json = json.dumps(secret, ensure_ascii=False)[1:-1]
    forms |= {
        "json": ascii_json,
        "json-utf8": utf8_json,
        "json-escaped-slash": ascii_json.replace("/", "\\/"),
        "json-utf8-escaped-slash": utf8_json.replace("/", "\\/"),
        "json-uppercase-u": re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), ascii_json),
        "json-html-safe": ascii_json.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"),
        "base64": base64.b64encode(secret.encode()).decode(),
        "base64-unpadded": base64.b64encode(secret.encode()).decode().rstrip("="),
        "base64-urlsafe": base64.urlsafe_b64encode(secret.encode()).decode(),
        "html": html.escape(secret),
        "html-no-quotes": html.escape(secret, quote=False),
        "html-decimal-apostrophe": html.escape(secret).replace("&#x27;", "&#39;"),
    }
    return forms


def secrets_of(credential: dict[str, str]) -> list[str]:
    return [credential[f] for f in ("token", "username", "password", "value") if f in credential]


def _received_secrets(handler: BaseHTTPRequestHandler) -> list[str]:
    """The credentials this request carried, read back as the server sees them."""
    found = []
    auth = handler.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        found.append(auth.removeprefix("Bearer "))
    if auth.startswith("Basic "):
        user, _, password = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
        found += [user, password]
    if handler.headers.get("X-Api-Key"):
        found.append(handler.headers["X-Api-Key"])
    found += parse_qs(urlsplit(handler.path).query).get("api_key", [])
    return found


class _Echo(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        encodings = [form for secret in _received_secrets(self) for form in promised_encodings(secret).values()]
        if urlsplit(self.path).path == "/json":
            body = json.dumps({"echo": encodings, "first": encodings[0]}, ensure_ascii=False).encode()
            content_type = "application/json; charset=utf-8"
        else:
            body = "\n".join(encodings).encode()
            content_type = "text/plain; charset=utf-8"
        status = 401 if urlsplit(self.path).path == "/reject" else 200
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        # A header value is Latin-1 on the wire: echo the ASCII forms there too.
        ascii_forms = [f for f in encodings if f.isascii() and "\n" not in f]
        self.send_header("X-Echo", " ".join(ascii_forms))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def full_dump(db: str) -> str:
    """Every row of every table twice: as Postgres renders it (row::text) and as Python decodes it."""
    chunks: list[str] = []

    def strings(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            for k, v in value.items():
                yield str(k)
                yield from strings(v)
        elif isinstance(value, list | tuple):
            for v in value:
                yield from strings(v)
        elif isinstance(value, bytes | memoryview):
            yield bytes(value).decode("latin-1")
        elif value is not None:
            yield str(value)

    with engine_for(db).connect() as conn:
        for table in Base.metadata.sorted_tables:
            chunks += [row[0] for row in conn.execute(text(f'SELECT t::text FROM "{table.name}" t'))]
            for row in conn.execute(text(f'SELECT * FROM "{table.name}"')):
                chunks += list(strings(tuple(row)))
    return "\n".join(chunks)


def test_every_promised_encoding_is_redacted_from_the_database_and_every_log_line(
    db, wfctl, tmp_path, key, run_workflow, echo_server, caplog: pytest.LogCaptureFixture
) -> None:
    for kind, credential in CREDENTIALS.items():
        set_integration(wfctl, tmp_path, f"api-{kind}", credential)
    steps = []
    for kind in CREDENTIALS:
        steps += [
            {"id": f"{kind}_text", "type": "http", "integration": f"api-{kind}", "with": {"url": f"{echo_server}/text"}},
            {"id": f"{kind}_json", "type": "http", "integration": f"api-{kind}", "with": {"url": f"{echo_server}/json"}},
            {"id": f"{kind}_log", "type": "log",
             "with": {"message": f"{{{{ steps.{kind}_text.output.body }}}} {{{{ steps.{kind}_json.output }}}}"}},
            {"id": f"{kind}_log_value", "type": "log", "with": {"message": f"{{{{ steps.{kind}_json.output.body }}}}"}},
        ]
    steps += [
        {"id": "last", "type": "transform", "with": {"expression": "steps.*.output"}},
        {"id": "rejected", "type": "http", "integration": "api-bearer", "with": {"url": f"{echo_server}/reject"}},
    ]
    workflow = json.dumps({"name": "echo-everything", "steps": steps})

    stream = io.StringIO()
    formatted = logging.StreamHandler(stream)
    formatted.setFormatter(JsonFormatter("runner"))
    root = logging.getLogger()
    root.addHandler(formatted)
    try:
        with caplog.at_level(logging.DEBUG):
            code, execution, step_runs = run_workflow(workflow, INTEGRATION_ENCRYPTION_KEY=key)
    finally:
        root.removeHandler(formatted)
    assert code == 1 and execution.error.startswith("step 'rejected' failed: GET"), execution.error
    assert [s.status for s in step_runs].count("succeeded") == len(steps) - 1

    dump = full_dump(db)
    lines = stream.getvalue().splitlines() + [f"{r.getMessage()} {r.__dict__}" for r in caplog.records]
    assert "[redacted]" in dump and any("[redacted]" in line for line in lines)
    assert len(lines) > len(steps)
    checked = 0
    for kind, credential in CREDENTIALS.items():
        for secret in secrets_of(credential):
            for name, form in promised_encodings(secret).items():
                checked += 1
                assert form not in dump, f"{kind}: {name} form {form!r} stored in the database"
                leaked = [line for line in lines if form in line]
                assert not leaked, f"{kind}: {name} form {form!r} logged: {leaked[0][:300]}"
    assert checked >= 5 * 25
