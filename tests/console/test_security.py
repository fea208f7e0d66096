"""Security of the console: authentication everywhere, CSRF, cookie flags, no secrets, audit."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.console.app import create_app
from services.core.crypto import generate_key, keyring_from_value
from services.core.db.models import ApiToken, Schedule
from services.core.db.session import session_factory
from services.core.integrations import set_integration
from services.core.settings import ConsoleSettings
from tests.console.conftest import SECRET_KEY, Console, start_console

PUBLIC = {"/healthz", "/readyz", "/login"}
SECRET_VALUE = "s3cret-credential-value-never-shown"


def routes() -> list[tuple[str, str]]:
    """Every (method, path) the app serves, with sample values for path parameters."""
    from services.console import api, web

    app = create_app(ConsoleSettings.from_env({"CONSOLE_SECRET_KEY": SECRET_KEY}), "postgresql://unused/db")
    found = []
    # The app's own routes, and the routers it includes (with their prefixes).
    for route in [*app.routes, *api.router.routes, *web.router.routes]:
        path = getattr(route, "path", "")
        for method in sorted(getattr(route, "methods", None) or []):
            if method == "HEAD":
                continue
            if not path:
                continue
            sample = re.sub(r"\{[^}]+\}", "nightly", path)
            found.append((method, sample))
    return found


@contextmanager
def signed_in(console: Console, role: str) -> Iterator[httpx.Client]:
    """A client that signed in through the sign-in form, as a browser does."""
    with console.client() as client:
        page = client.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        response = client.post("/login", data={"token": console.tokens[role], "csrf_token": csrf.group(1), "next": "/"})
        assert response.status_code == 303, response.text
        yield client


def page_csrf(client: httpx.Client, path: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert match is not None
    return match.group(1)


def enabled(console: Console) -> bool:
    with session_factory(console.database_url)() as session:
        return bool(session.scalar(select(Schedule.enabled).where(Schedule.name == "nightly")))


def test_nothing_is_reachable_without_a_token_but_health(console: Console) -> None:
    checked = 0
    with console.client() as anonymous:
        for method, path in routes():
            if path in PUBLIC or path.startswith("/static"):
                continue
            response = anonymous.request(method, path)
            checked += 1
            if path.startswith("/api/") or path == "/metrics":
                assert response.status_code == 401, (method, path, response.status_code)
                assert response.json()["error"]["message"]
            elif method == "GET":
                assert response.status_code == 303 and response.headers["location"].startswith("/login"), (method, path)
            else:
                assert response.status_code in {303, 401, 403}, (method, path, response.status_code)
                assert response.status_code != 303 or response.headers["location"].startswith("/login")
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/api/v1/workflows", headers={"Authorization": "Bearer wfr_wrong"}).status_code == 401
        assert anonymous.get("/api/v1/workflows", headers={"Authorization": "Basic abc"}).status_code == 401
    assert checked > 25
    assert enabled(console)


def test_console_forms_need_the_csrf_token(console: Console) -> None:
    with signed_in(console, "operator") as browser:
        refused = browser.post("/actions/schedule.pause/nightly", data={"next": "/schedules/nightly"})
        assert refused.status_code == 403
        assert enabled(console)
        wrong = browser.post("/actions/schedule.pause/nightly", data={"csrf_token": "forged"})
        assert wrong.status_code == 403
        assert enabled(console)
        # A cookie alone never changes anything over the API either.
        assert browser.post("/api/v1/schedules/nightly/pause").status_code == 401
        assert enabled(console)
        csrf = page_csrf(browser, "/schedules/nightly")
        accepted = browser.post("/actions/schedule.pause/nightly", data={"csrf_token": csrf, "next": "/schedules/nightly"})
        assert accepted.status_code == 303 and accepted.headers["location"] == "/schedules/nightly"
        assert not enabled(console)
        assert "schedule nightly paused" in browser.get("/schedules/nightly").text
        assert browser.post("/logout", data={}).status_code == 403
    with console.client() as anonymous:
        assert anonymous.post("/login", data={"token": console.tokens["admin"]}).status_code == 403


def test_a_viewer_cannot_act_through_the_console_either(console: Console) -> None:
    with signed_in(console, "viewer") as browser:
        csrf = page_csrf(browser, "/")
        response = browser.post("/actions/schedule.pause/nightly", data={"csrf_token": csrf})
        assert response.status_code == 403
        assert browser.get("/tokens").status_code == 403
    assert enabled(console)


def test_session_cookie_flags_and_revocation(console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    client = console.client()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert csrf is not None
    response = client.post("/login", data={"token": console.tokens["viewer"], "csrf_token": csrf.group(1)})
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("wfr_session="))
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path"} <= flags
    assert re.search(r"samesite=(lax|strict)", cookie, re.I)
    assert console.tokens["viewer"] not in cookie
    assert client.get("/").status_code == 200
    # A revoked token ends its console sessions at once.
    with session_factory(console.database_url)() as session, session.begin():
        session.execute(ApiToken.__table__.update().where(ApiToken.name == "viewer-token").values(revoked_at=ApiToken.created_at))
    assert client.get("/").status_code == 303
    # A tampered cookie is no session.
    client.cookies.set("wfr_session", cookie.split(";")[0].split("=", 1)[1][:-2] + "xx")
    assert client.get("/").status_code == 303
    client.close()


def test_secure_cookie_flag_when_configured(db: str, queues: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.console.conftest import seed

    tokens = seed(db)
    server = start_console(db, monkeypatch, CONSOLE_SECURE_COOKIES="1")
    try:
        with httpx.Client(base_url=server.url) as client:
            page = client.get("/login")
            login_cookie = page.headers["set-cookie"]
            assert "secure" in login_cookie.lower()
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert csrf is not None
            # A client over plain HTTP does not send Secure cookies back: send it by hand.
            response = client.post(
                "/login", data={"token": tokens["admin"], "csrf_token": csrf.group(1)},
                headers={"Cookie": login_cookie.split(";")[0]},
            )
            cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("wfr_session="))
            assert "secure" in cookie.lower()
    finally:
        server.stop()


def test_sign_in_never_redirects_off_site(console: Console) -> None:
    with console.client() as client:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert csrf is not None
        response = client.post(
            "/login", data={"token": console.tokens["viewer"], "csrf_token": csrf.group(1), "next": "//evil.example/x"}
        )
        assert response.headers["location"] == "/"


def test_secrets_never_appear_in_any_page_or_response(console: Console, queues: Any) -> None:
    with session_factory(console.database_url)() as session, session.begin():
        set_integration(session, "items-api", {"type": "bearer", "token": SECRET_VALUE}, keyring_from_value(generate_key()))
        hashes = list(session.scalars(select(ApiToken.token_hash)))
    forbidden = [SECRET_VALUE, SECRET_KEY, *hashes, console.tokens["viewer"], console.tokens["operator"]]
    bodies: list[str] = []
    with signed_in(console, "admin") as browser:
        for path in ("/", "/workflows", "/workflows/greet", "/schedules", "/schedules/nightly", "/executions", "/dlq",
                     "/integrations", "/audit", "/tokens", "/api/docs"):
            response = browser.get(path)
            assert response.status_code == 200, path
            bodies.append(response.text)
            bodies.extend(f"{k}: {v}" for k, v in response.headers.items())
    with console.client("admin") as api:
        for path in ("/api/v1/workflows", "/api/v1/workflows/greet", "/api/v1/schedules", "/api/v1/schedules/nightly",
                     "/api/v1/executions", "/api/v1/integrations", "/api/v1/tokens", "/api/v1/audit", "/api/v1/dlq",
                     "/metrics", "/api/openapi.json", "/api/v1/whoami"):
            response = api.get(path)
            assert response.status_code == 200, path
            bodies.append(response.text)
    for body in bodies:
        for secret in forbidden:
            assert secret not in body


def test_trusted_user_header_is_off_by_default_and_on_when_configured(
    db: str, queues: Any, console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    with console.client() as client:
        assert client.get("/api/v1/whoami", headers={"X-Forwarded-User": "alice"}).status_code == 401
    server = start_console(db, monkeypatch, CONSOLE_TRUSTED_USER_HEADER="X-Forwarded-User", CONSOLE_TRUSTED_USER_ROLE="operator")
    try:
        with httpx.Client(base_url=server.url, headers={"X-Forwarded-User": "alice"}) as client:
            assert client.get("/api/v1/whoami").json() == {"name": "alice", "role": "operator", "actor": "proxy:alice"}
            # A cross-site form (or a no-CORS fetch) would carry the proxy's header too: a POST it
            # authenticates must be JSON, which only a same-origin script or a client can send.
            for headers in ({}, {"Content-Type": "application/x-www-form-urlencoded"}, {"Content-Type": "text/plain"}):
                forged = client.post("/api/v1/schedules/nightly/pause", headers=headers)
                assert forged.status_code == 403, headers
                assert forged.json()["error"]["message"] == "a change made as the proxy's user must be sent as application/json"
            assert client.post("/api/v1/schedules/nightly/pause", json={}).status_code == 200
            # A bad token is refused, not quietly replaced by the proxy's user.
            refused = client.get("/api/v1/whoami", headers={"Authorization": "Bearer wfr_not-a-token"})
            assert refused.status_code == 401
            assert client.get("/").status_code == 200
            assert client.get("/tokens").status_code == 403
    finally:
        server.stop()
    assert [(e.actor, e.action) for e in console.audit_rows()][-1] == ("proxy:alice", "schedule.pause")
    assert [e.action for e in console.audit_rows()].count("schedule.pause") == 1


def test_requests_too_large_or_with_nul_are_refused_before_anything_runs(console: Console) -> None:
    from services.console.guard import MAX_BODY_BYTES

    before = console.audit_count()
    with console.client() as anonymous, console.client("admin") as admin:
        big = b"{" + b" " * MAX_BODY_BYTES + b"}"
        for client in (anonymous, admin):
            refused = client.post("/api/v1/workflows/greet/run", content=big, headers={"Content-Type": "application/json"})
            assert refused.status_code == 413 and refused.json()["error"]["field"] == "body"

        def chunks() -> Iterator[bytes]:  # no Content-Length: read up to the limit, then refused
            for _ in range(MAX_BODY_BYTES // 65536 + 2):
                yield b" " * 65536

        chunked = admin.put("/api/v1/workflows", content=chunks(), headers={"Content-Type": "application/json"})
        assert chunked.status_code == 413
        small = admin.post("/api/v1/workflows/greet/run", content=iter([b'{"input": ', b"{}}"]),
                           headers={"Content-Type": "application/json"})
        assert small.status_code == 202, small.text
        for path in ("/api/v1/workflows/a%00b", "/api/v1/executions/%00%00%00%00%00%00%00%00", "/workflows/a%00b"):
            assert admin.get(path).status_code == 400, path
        nul = admin.get("/api/v1/executions", params={"workflow": "a\x00b"})
        assert nul.status_code == 400 and nul.json() == {"error": {"field": "query", "message": "contains a NUL character"}}
        for query in ({"before": "99999999999999999999"}, {"before": "0"}, {"target_kind": "planet"}):
            bad = admin.get("/api/v1/audit", params=query)
            assert bad.status_code == 400 and bad.json()["error"]["field"] in ("before", "target_kind"), bad.text
    with signed_in(console, "admin") as browser:
        assert browser.get("/audit", params={"before": "99999999999999999999"}).status_code == 400
    assert console.audit_count() == before + 1  # only the small run


def test_api_errors_name_the_api_fields(console: Console) -> None:
    with console.client("admin") as admin:
        body = {"name": "n2", "workflow": "greet", "cron": "0 9 * * *"}
        for extra, field in (({"jitter_seconds": -5}, "jitter_seconds"),
                             ({"catchup_window_seconds": 2**40}, "catchup_window_seconds")):
            bad = admin.post("/api/v1/schedules", json={**body, **extra})
            assert bad.status_code == 400 and bad.json()["error"]["field"] == field, bad.text
        backwards = admin.get("/api/v1/schedules/nightly/history", params={"from": "2026-11-02T00:00:00Z",
                                                                           "to": "2026-11-01T00:00:00Z"})
        assert backwards.json()["error"] == {"field": "to", "message": "is before from"}
        broken = admin.post("/api/v1/schedules", content=b"{not json", headers={"Content-Type": "application/json"})
        assert broken.status_code == 400 and broken.json()["error"]["field"] == "body"
        newline = admin.post("/api/v1/tokens", json={"name": "t1\n", "role": "viewer"})
        assert newline.status_code == 400 and newline.json()["error"]["field"] == "name"


def test_console_actions_and_token_creation_are_audited(console: Console, queues: Any) -> None:
    before = console.audit_count()
    with signed_in(console, "admin") as browser:
        csrf = page_csrf(browser, "/schedules/nightly")
        for action, target, data in (
            ("schedule.pause", "nightly", {}),
            ("schedule.resume", "nightly", {}),
            ("workflow.run", "greet", {"input": '{"who": "form"}'}),
        ):
            response = browser.post(f"/actions/{action}/{target}", data={"csrf_token": csrf, **data})
            assert response.status_code == 303
        created = browser.post("/tokens", data={"csrf_token": csrf, "name": "made-in-console", "role": "viewer"})
        assert created.status_code == 201
        assert re.search(r"wfr_[A-Za-z0-9_-]{43}", created.text)
        bad = browser.post("/actions/workflow.run/greet", data={"csrf_token": csrf, "input": "{not json"})
        assert bad.status_code == 303
        assert "input: is not valid JSON" in browser.get(bad.headers["location"]).text
    rows = [(e.actor, e.action, e.target) for e in console.audit_rows()[before:]]
    assert rows == [
        ("token:admin-token", "schedule.pause", "nightly"),
        ("token:admin-token", "schedule.resume", "nightly"),
        ("token:admin-token", "workflow.run", "greet"),
        ("token:admin-token", "token.create", "made-in-console"),
    ]
    assert len(queues.drain()) == 1


def test_changes_are_shown_beside_the_runs_tokens_and_integrations_they_touched(console: Console, queues: Any) -> None:
    """SPEC: the audit trail is listable *and shown beside the object*: a run's page shows who
    asked to cancel it; the tokens and integrations pages list their changes."""
    from datetime import UTC, datetime

    from tests.console.test_api import add_executions

    [running] = add_executions(console, 1, datetime.now(UTC), status="running")
    with signed_in(console, "admin") as browser:
        csrf = page_csrf(browser, f"/executions/{running}")
        assert browser.post(f"/actions/execution.cancel/{running}", data={"csrf_token": csrf}).status_code == 303
        page = browser.get(f"/executions/{running}").text
        assert re.search(r'data-testid="cancel-requested-by">token:admin-token', page)
        audit_rows = page.split('data-testid="audit"', 1)[1]
        assert "execution.cancel" in audit_rows and "token:admin-token" in audit_rows
        assert browser.post("/tokens", data={"csrf_token": csrf, "name": "ci", "role": "viewer"}).status_code == 201
        tokens = browser.get("/tokens").text
        assert "token.create" in tokens.split('data-testid="audit"', 1)[1]
    keyring = keyring_from_value(generate_key())
    with session_factory(console.database_url)() as session, session.begin():
        set_integration(session, "items-api", {"type": "bearer", "token": SECRET_VALUE}, keyring, actor="cli:ops")
    with signed_in(console, "viewer") as browser:
        integrations = browser.get("/integrations").text
        assert "integration.create" in integrations and "cli:ops" in integrations
        assert SECRET_VALUE not in integrations


def test_only_the_sign_in_pages_own_files_are_public(console: Console) -> None:
    """The sign-in page needs the console's CSS and script; the API docs' files need a sign-in."""
    with console.client() as anonymous:
        assert anonymous.get("/static/console.css").status_code == 200
        assert anonymous.get("/static/console.js").status_code == 200
        hidden = anonymous.get("/static/swagger/swagger-ui-bundle.js")
        assert hidden.status_code == 303 and hidden.headers["location"].startswith("/login")
    with console.client("viewer") as viewer:
        bundle = viewer.get("/static/swagger/swagger-ui-bundle.js")
        assert bundle.status_code == 200 and len(bundle.content) > 100_000
        assert viewer.get("/static/swagger/swagger-ui.css").status_code == 200
        assert viewer.get("/static/swagger/index.html").status_code == 404  # only what the docs page loads
        assert "swagger-ui-bundle.js" in viewer.get("/api/docs").text
    with signed_in(console, "viewer") as browser:  # the docs page in a browser: the session cookie
        assert browser.get("/static/swagger/swagger-ui.css").status_code == 200
