"""The http step against a local server, integrations via wfctl, and redaction end to end."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import text

from services.core.crypto import generate_key
from services.core.db.models import Base
from services.core.db.session import engine_for

SECRETS = {
    "bearer": {"type": "bearer", "token": "tok-BEARER-4f9a"},
    "basic": {"type": "basic", "username": "user-7c1e", "password": "pw-BASIC-91b2"},
    "header": {"type": "header", "name": "X-Api-Key", "value": "hdr-VALUE-33d0"},
    "query": {"type": "query", "name": "api_key", "value": "qry/VALUE+5e&x"},
}


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = generate_key()
    monkeypatch.setenv("INTEGRATION_ENCRYPTION_KEY", value)
    return value


def set_integration(wfctl, tmp_path, name: str, credential: dict) -> None:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(credential))
    result = wfctl("integrations", "set", name, "-f", str(path))
    assert result.code == 0, result.err


def dump_database(db: str) -> str:
    """Every row of every table, as text."""
    chunks = []
    with engine_for(db).connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(text(f'SELECT * FROM "{table.name}"')):
                chunks.append(repr(tuple(bytes(v).decode("latin-1") if isinstance(v, bytes | memoryview) else v for v in row)))
    return "\n".join(chunks)


def test_http_get_json_and_text(run_workflow, http_server) -> None:
    code, execution, steps = run_workflow(f"""
name: fetch
steps:
  - {{id: fetch, type: http, with: {{url: "{http_server.url}/items", query: {{page: 2}}, headers: {{X-Trace: abc}}}}}}
  - {{id: count, type: transform, with: {{expression: "length(steps.fetch.output.body.items)"}}}}
  - {{id: words, type: http, with: {{url: "{http_server.url}/text"}}}}
""")
    assert code == 0, execution.error
    fetch = steps[0].output
    assert fetch["status"] == 200 and fetch["body"] == {"items": [1, 2, 3]}
    assert fetch["headers"]["content-type"] == "application/json"
    assert steps[1].output == 3
    assert steps[2].output["body"] == "plain words"
    assert http_server.requests[0].query == {"page": ["2"]}
    assert http_server.requests[0].headers["X-Trace"] == "abc"


def test_http_post_json_body_and_templated_method(run_workflow, http_server) -> None:
    code, execution, steps = run_workflow(f"""
name: post
steps:
  - {{id: send, type: http, with: {{method: "{{{{ input.m }}}}", url: "{http_server.url}/echo", json: {{n: "{{{{ input.n }}}}"}}}}}}
  - {{id: raw, type: http, with: {{method: PUT, url: "{http_server.url}/echo", body: "plain"}}}}
""", input={"m": "POST", "n": 5})
    assert code == 0, execution.error
    assert steps[0].output["body"]["method"] == "POST"
    assert json.loads(steps[0].output["body"]["body"]) == {"n": 5}
    assert steps[1].output["body"]["body"] == "plain"


def test_http_unexpected_status_fails_and_keeps_the_response(run_workflow, http_server) -> None:
    code, execution, steps = run_workflow(f"""
name: notfound
steps:
  - {{id: get, type: http, with: {{url: "{http_server.url}/status/500"}}}}
""")
    assert code == 1
    assert execution.error.startswith(f"step 'get' failed: GET {http_server.url}/status/500 returned 500 (expected 2xx)")
    assert steps[0].output["status"] == 500 and steps[0].output["body"] == {"error": "nope"}
    code, execution, _ = run_workflow(f"""
name: expected
steps:
  - {{id: get, type: http, with: {{url: "{http_server.url}/status/404", expect_status: [404]}}}}
""")
    assert code == 0, execution.error


def test_http_refusals(run_workflow, http_server) -> None:
    cases = {
        "http://169.254.169.254/latest/meta-data/": "cloud metadata address",
        "file:///etc/passwd": "only http and https URLs are allowed",
        f"{http_server.url}/redirect-metadata": "cloud metadata address",
    }
    for index, (url, reason) in enumerate(cases.items()):
        code, execution, _ = run_workflow(f"name: ssrf{index}\nsteps: [{{id: get, type: http, with: {{url: '{url}'}}}}]")
        assert code == 1 and reason in execution.error, execution.error
    code, execution, _ = run_workflow(
        f"name: private\nsteps: [{{id: get, type: http, with: {{url: '{http_server.url}/items'}}}}]",
        RUNNER_DENY_PRIVATE_NETWORKS="1",
    )
    assert code == 1 and "private or loopback address" in execution.error
    assert all(r.path != "/latest/meta-data/" for r in http_server.requests)


def test_http_timeout_is_a_step_failure(run_workflow) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers
    try:
        port = listener.getsockname()[1]
        code, execution, _ = run_workflow(
            f"name: hang\nsteps: [{{id: get, type: http, with: {{url: 'http://127.0.0.1:{port}/', timeout_seconds: 0.3}}}}]"
        )
    finally:
        listener.close()
    assert code == 1 and execution.error == f"step 'get' failed: GET http://127.0.0.1:{port}/ timed out after 0.3s"


def test_integrations_cli_set_list_and_validation(db, wfctl, tmp_path, key) -> None:
    set_integration(wfctl, tmp_path, "items-api", SECRETS["bearer"])
    set_integration(wfctl, tmp_path, "items-api", SECRETS["header"])  # replace
    listed = wfctl("integrations", "list", "--output", "json")
    assert listed.code == 0
    assert [(r["name"], r["type"]) for r in listed.json()] == [("items-api", "header")]
    assert "hdr-VALUE" not in listed.out and "hdr-VALUE" not in wfctl("integrations", "list").out
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "bearer"}')
    result = wfctl("integrations", "set", "x", "-f", str(bad))
    assert result.code == 2 and result.err.strip() == "error: file.token: is required and must be a non-empty string"
    bad.write_text('{"type": "oauth"}')
    assert "file.type: must be one of bearer, basic, header, query" in wfctl("integrations", "set", "x", "-f", str(bad)).err


def test_missing_or_wrong_key_is_one_line(db, wfctl, tmp_path, monkeypatch) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(SECRETS["bearer"]))
    monkeypatch.delenv("INTEGRATION_ENCRYPTION_KEY", raising=False)
    result = wfctl("integrations", "set", "a", "-f", str(path))
    assert result.code == 2 and result.err.strip().startswith("error: INTEGRATION_ENCRYPTION_KEY is not set")
    monkeypatch.setenv("INTEGRATION_ENCRYPTION_KEY", "not-a-key")
    result = wfctl("integrations", "set", "a", "-f", str(path))
    assert result.code == 2 and "key 1 of 1 is not a valid key" in result.err and "Traceback" not in result.err
    monkeypatch.setenv("INTEGRATION_ENCRYPTION_KEY", generate_key())
    assert wfctl("integrations", "set", "a", "-f", str(path)).code == 0
    monkeypatch.setenv("INTEGRATION_ENCRYPTION_KEY", generate_key())
    result = wfctl("integrations", "rotate-key")
    assert result.code == 2 and result.err.strip() == (
        "error: integration 'a' cannot be decrypted with any key in INTEGRATION_ENCRYPTION_KEY (wrong key?)"
    )


def test_rotation_keeps_every_integration_readable(db, wfctl, tmp_path, monkeypatch, run_workflow, http_server) -> None:
    old = generate_key()
    monkeypatch.setenv("INTEGRATION_ENCRYPTION_KEY", old)
    for kind, credential in SECRETS.items():
        set_integration(wfctl, tmp_path, f"api-{kind}", credential)
    new = generate_key()
    monkeypatch.setenv("INTEGRATION_ENCRYPTION_KEY", f"{new},{old}")
    result = wfctl("integrations", "rotate-key")
    assert result.code == 0 and result.out.strip() == "re-encrypted 4 integrations under the first key"
    # Readable with the new key alone; the old one no longer decrypts anything.
    steps = "\n".join(
        f"  - {{id: {kind}, type: http, integration: api-{kind}, with: {{url: '{http_server.url}/echo'}}}}" for kind in SECRETS
    )
    code, execution, _ = run_workflow(f"name: rotated\nsteps:\n{steps}", INTEGRATION_ENCRYPTION_KEY=new)
    assert code == 0, execution.error
    code, execution, _ = run_workflow(f"name: oldkey\nsteps:\n{steps}", INTEGRATION_ENCRYPTION_KEY=old)
    assert code == 1 and execution.error == (
        "cannot run: integration 'api-basic' cannot be decrypted with any key in INTEGRATION_ENCRYPTION_KEY (wrong key?)"
    )
    code, execution, _ = run_workflow(f"name: nokey\nsteps:\n{steps}", INTEGRATION_ENCRYPTION_KEY="")
    assert code == 1 and execution.error.startswith("cannot run: INTEGRATION_ENCRYPTION_KEY is not set")


def test_auth_is_applied_and_never_persisted_or_logged(
    db, wfctl, tmp_path, key, run_workflow, http_server, caplog: pytest.LogCaptureFixture
) -> None:
    for kind, credential in SECRETS.items():
        set_integration(wfctl, tmp_path, f"api-{kind}", credential)
    workflow = f"""
name: echo-secrets
steps:
  - {{id: bearer, type: http, integration: api-bearer, with: {{url: "{http_server.url}/echo"}}}}
  - {{id: basic, type: http, integration: api-basic, with: {{url: "{http_server.url}/echo"}}}}
  - {{id: header, type: http, integration: api-header, with: {{url: "{http_server.url}/echo"}}}}
  - {{id: query, type: http, integration: api-query, with: {{url: "{http_server.url}/echo", query: {{page: 1}}}}}}
  - {{id: say, type: log, with: {{message: "echoed {{{{ steps.bearer.output.body.headers.Authorization }}}}"}}}}
  - {{id: boom, type: fail, with: {{message: "query was {{{{ steps.query.output.body.query }}}}"}}}}
"""
    with caplog.at_level(logging.DEBUG):
        code, execution, steps = run_workflow(workflow, INTEGRATION_ENCRYPTION_KEY=key)
    assert code == 1 and execution.error.startswith("step 'boom' failed: query was")
    # The server saw the real credentials.
    seen = {r.path + str(i): r for i, r in enumerate(http_server.requests)}
    requests = list(seen.values())
    assert requests[0].headers["Authorization"] == "Bearer tok-BEARER-4f9a"
    assert requests[1].headers["Authorization"].startswith("Basic ")
    assert requests[2].headers["X-Api-Key"] == "hdr-VALUE-33d0"
    assert requests[3].query == {"page": ["1"], "api_key": ["qry/VALUE+5e&x"]}
    # Nothing stored or logged reveals them.
    stored = dump_database(db)
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "[redacted]" in stored and "[redacted]" in logged
    for credential in SECRETS.values():
        for field in ("token", "username", "password", "value"):
            if field in credential:
                secret = credential[field]
                assert secret not in stored, field
                assert secret not in logged, field
                assert json.dumps(secret)[1:-1] not in stored
    import base64

    basic = base64.b64encode(b"user-7c1e:pw-BASIC-91b2").decode()
    assert basic not in stored and basic not in logged
    assert "qry%2FVALUE%2B5e%26x" not in stored and "qry%2FVALUE%2B5e%26x" not in logged


def test_template_errors_quoting_an_echoed_secret_are_redacted(db, wfctl, tmp_path, key, run_workflow, http_server) -> None:
    """Jinja names a missing key with repr() (quotes escaped) and errors are collapsed to one line:
    both forms of a secret are redacted too."""
    token = "tok'en\"  SPACED-8e1c"
    set_integration(wfctl, tmp_path, "quoted", {"type": "bearer", "token": token})
    code, execution, steps = run_workflow(f"""
name: echo-key
steps:
  - {{id: echo, type: http, integration: quoted, with: {{url: "{http_server.url}/echo"}}}}
  - {{id: use, type: log, with: {{message: "{{{{ {{}}[steps.echo.output.body.headers.Authorization] }}}}"}}}}
""", INTEGRATION_ENCRYPTION_KEY=key)
    assert code == 1 and "template error" in execution.error and "[redacted]" in execution.error
    stored = dump_database(db)
    assert "SPACED-8e1c" not in stored, execution.error


def test_error_snippet_does_not_cut_a_secret_in_half(db, wfctl, tmp_path, key, run_workflow, http_server) -> None:
    """The error quotes the first 200 characters of the body; a secret straddling that edge must
    not leave its first half behind (redacting after truncating would miss it)."""
    set_integration(wfctl, tmp_path, "api-bearer", SECRETS["bearer"])
    code, execution, steps = run_workflow(
        f"name: reject\nsteps: [{{id: get, type: http, integration: api-bearer, with: {{url: '{http_server.url}/reject'}}}}]",
        INTEGRATION_ENCRYPTION_KEY=key,
    )
    assert code == 1 and "returned 401" in execution.error
    stored = dump_database(db)
    assert "tok-BEARER" not in stored, execution.error


def test_credential_header_is_not_forwarded_to_another_origin(db, wfctl, tmp_path, key, run_workflow, http_server) -> None:
    import threading
    from http.server import ThreadingHTTPServer

    from tests.runtime.conftest import _Handler

    other = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    other.recorded = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=other.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        target = f"http://127.0.0.1:{other.server_address[1]}/echo"
        for kind in ("header", "bearer"):
            set_integration(wfctl, tmp_path, f"api-{kind}", SECRETS[kind])
            code, execution, _ = run_workflow(
                f"name: hop-{kind}\nsteps: [{{id: get, type: http, integration: api-{kind}, "
                f"with: {{url: '{http_server.url}/redirect', query: {{to: '{target}'}}}}}}]",
                INTEGRATION_ENCRYPTION_KEY=key,
            )
            assert code == 0, execution.error
        first_hops = [r.headers for r in http_server.requests if r.path == "/redirect"]
        assert first_hops[0]["X-Api-Key"] == "hdr-VALUE-33d0" and first_hops[1]["Authorization"].startswith("Bearer ")
        forwarded = [r.headers for r in other.recorded]  # type: ignore[attr-defined]
        assert len(forwarded) == 2
        assert all("X-Api-Key" not in h and "Authorization" not in h for h in forwarded), forwarded
    finally:
        other.shutdown()
        other.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("layers", [1, 2])
def test_compressed_body_is_capped_while_inflating(run_workflow, http_server, layers: int) -> None:
    """A small gzip body that inflates to 100 MiB fails at the 10 MiB cap without ever holding
    much more than the cap in memory (gzip inflates up to ~1000x per network chunk)."""
    import tracemalloc

    from tests.runtime.conftest import compressed_zeros

    compressed_zeros(layers)  # built before measuring
    tracemalloc.start()
    try:
        code, execution, _ = run_workflow(
            f"name: bomb{layers}\nsteps: [{{id: get, type: http, with: {{url: '{http_server.url}/bomb/{layers}'}}}}]"
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 1 and "response body exceeds 10 MiB" in execution.error, execution.error
    assert peak < 40 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize("coding", ["gzip", "deflate-zlib", "deflate-raw", "gzip, gzip", "identity", "br"])
def test_content_codings_are_inflated(coding: str) -> None:
    import gzip
    import zlib

    import httpx

    from services.runtime.steps.base import StepContext
    from services.runtime.steps.http import _read_limited

    body = json.dumps({"items": list(range(50_000))}).encode()
    encoded, header = body, coding
    if coding == "gzip":
        encoded = gzip.compress(body)
    elif coding == "gzip, gzip":
        encoded = gzip.compress(gzip.compress(body))
    elif coding == "deflate-zlib":
        encoded, header = zlib.compress(body), "deflate"
    elif coding == "deflate-raw":
        raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        encoded, header = raw.compress(body) + raw.flush(), "deflate"
    chunks = [encoded[i : i + 1000] for i in range(0, len(encoded), 1000)]

    class Chunks(httpx.SyncByteStream):
        def __iter__(self):
            yield from chunks

    response = httpx.Response(200, headers={"Content-Encoding": header}, stream=Chunks())
    assert _read_limited(response, StepContext(execution_id="e", step_id="s", workflow="w", data={})) == (
        encoded if coding == "br" else body
    )
