"""`wfctl tokens`, `wfctl audit`, `wfctl serve`, and the remote CLI (WFCTL_API_URL + WFCTL_TOKEN)."""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.conftest import Console, seed

ROOT = Path(__file__).resolve().parents[2]


def test_tokens_create_list_revoke(db: str, wfctl: Any) -> None:
    created = wfctl("tokens", "create", "ci", "--role", "operator")
    assert created.code == 0, created.err
    token = created.out.strip()
    assert re.fullmatch(r"wfr_[A-Za-z0-9_-]{43}", token)
    listed = wfctl("tokens", "list", "-o", "json")
    assert [(t["name"], t["role"], t["revoked_at"]) for t in listed.json()] == [("ci", "operator", None)]
    assert token not in listed.out
    duplicate = wfctl("tokens", "create", "ci", "--role", "viewer")
    assert (duplicate.code, duplicate.err.strip()) == (2, "error: name: a token named 'ci' already exists (revoke it first)")
    bad_role = wfctl("tokens", "create", "other", "--role", "root")
    assert bad_role.code == 2 and bad_role.err.startswith("error: role: ")
    assert wfctl("tokens", "revoke", "ci").code == 0
    assert wfctl("tokens", "list", "-o", "json").json()[0]["revoked_at"] is not None
    missing = wfctl("tokens", "revoke", "nope")
    assert (missing.code, missing.err.strip()) == (2, "error: token: no token named 'nope'")


def test_changes_made_with_wfctl_on_the_database_are_audited(
    db: str, queues: Any, wfctl: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.core.crypto import generate_key

    seed(db)
    monkeypatch.setenv("INTEGRATION_ENCRYPTION_KEY", generate_key())
    credential = tmp_path / "cred.json"
    credential.write_text('{"type": "bearer", "token": "t0ken-never-in-the-audit"}')
    assert wfctl("integrations", "set", "items-api", "-f", str(credential)).code == 0
    assert wfctl("integrations", "rotate-key").code == 0
    workflow = tmp_path / "w.yaml"
    workflow.write_text("name: other\nsteps:\n  - {id: a, type: log, with: {message: hi}}\n")
    assert wfctl("workflows", "apply", "-f", str(workflow)).code == 0
    assert wfctl("schedules", "create", "every", "--workflow", "other", "--cron", "*/5 * * * *").code == 0
    assert wfctl("schedules", "pause", "every").code == 0
    assert wfctl("schedules", "resume", "every").code == 0
    assert wfctl("run", "other").code == 0
    assert wfctl("dlq", "redrive").code == 0
    assert wfctl("schedules", "update", "every", "--jitter", "10").code == 0
    assert wfctl("pools", "set", "gpu", "--slots", "2").code == 0
    assert wfctl("pools", "set", "gpu", "--slots", "3").code == 0
    assert wfctl("pools", "set", "gpu", "--slots", "3").code == 0  # unchanged: nothing to record
    assert wfctl("schedules", "delete", "every").code == 0
    rows = wfctl("audit", "list", "-o", "json").json()
    actor = f"cli:{getpass.getuser()}"
    mine = [(r["action"], r["target"]) for r in rows if r["actor"] == actor]
    assert mine == [
        ("schedule.delete", "every"),
        ("pool.update", "gpu"),
        ("pool.create", "gpu"),
        ("schedule.update", "every"),
        ("dlq.redrive", "dlq"),
        ("workflow.run", "other"),
        ("schedule.resume", "every"),
        ("schedule.pause", "every"),
        ("schedule.create", "every"),
        ("workflow.create", "other"),
        ("integration.rotate_key", "*"),
        ("integration.create", "items-api"),
    ]
    assert "t0ken-never-in-the-audit" not in json.dumps(rows)
    only = wfctl("audit", "list", "--kind", "schedule", "--target", "every", "-o", "json").json()
    assert {r["target"] for r in only} == {"every"}
    table = wfctl("audit", "list")
    assert table.code == 0 and "schedule.pause" in table.out
    for limit in ("0", "-1", "1001"):
        refused = wfctl("audit", "list", "--limit", limit)
        assert (refused.code, refused.err.strip()) == (2, "error: limit: must be between 1 and 1000")


def test_wfctl_apply_is_audited_under_the_cli_user(db: str, wfctl: Any, tmp_path: Path) -> None:
    manifest = tmp_path / "fleet.yaml"
    workflow = "kind: Workflow\nname: w\nsteps: [{id: a, type: log, with: {message: hi}}]\n"
    manifest.write_text(workflow + "---\nkind: Schedule\nname: s\nworkflow: w\ncron: '0 9 * * *'\n")
    assert wfctl("apply", "-f", str(manifest), "--dry-run").code == 0  # a dry run records nothing
    assert wfctl("apply", "-f", str(manifest)).code == 0
    manifest.write_text(workflow + "---\nkind: Schedule\nname: s\nworkflow: w\ncron: '0 10 * * *'\n")
    assert wfctl("apply", "-f", str(manifest)).code == 0
    manifest.write_text(workflow)
    assert wfctl("apply", "-f", str(manifest), "--prune").code == 0
    rows = wfctl("audit", "list", "-o", "json").json()
    actor = f"cli:{getpass.getuser()}"
    assert [(r["actor"], r["action"], r["target"]) for r in rows] == [
        (actor, "schedule.delete", "s"),
        (actor, "schedule.update", "s"),
        (actor, "schedule.create", "s"),
        (actor, "workflow.create", "w"),
    ]
    assert rows[0]["details"] == {"pruned": True} and rows[1]["details"]["changed"] == ["cron"]


def remote_env(monkeypatch: pytest.MonkeyPatch, console: Console, role: str) -> None:
    """The operator's machine: the API and a token, and no database or queue credentials."""
    for key in ("DATABASE_URL", "QUEUE_URL", "DLQ_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WFCTL_API_URL", console.url)
    monkeypatch.setenv("WFCTL_TOKEN", console.tokens[role])


def test_remote_cli_goes_through_the_api(console: Console, queues: Any, wfctl: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    remote_env(monkeypatch, console, "operator")
    listed = wfctl("schedules", "list", "-o", "json")
    assert listed.code == 0, listed.err
    assert [s["name"] for s in listed.json()] == ["nightly"]
    shown = wfctl("schedules", "show", "nightly", "-o", "json").json()
    assert shown["timezone"] == "Europe/Berlin" and len(shown["next_fire_times"]) == 5
    assert wfctl("schedules", "pause", "nightly").out.strip() == "schedule nightly paused"
    resumed = wfctl("schedules", "resume", "nightly")
    assert resumed.code == 0 and resumed.out.startswith("schedule nightly resumed; next run at ")
    run = wfctl("run", "greet", "--input", '{"who": "remote"}')
    assert run.code == 0 and "enqueued (manual:" in run.out
    assert json.loads(queues.drain()[0]["Body"])["input"] == {"who": "remote"}
    assert wfctl("executions", "list", "-o", "json").json() == []
    missing = wfctl("executions", "show", "0123456789")
    assert (missing.code, missing.err.strip()) == (2, "error: execution: no execution with id '0123456789'")
    backfill = wfctl("schedules", "backfill", "nightly", "--from", "2026-11-01T00:00:00Z", "--to", "2026-11-03T00:00:00Z")
    assert backfill.code == 0 and "2 fire times, 2 enqueued" in backfill.out
    assert wfctl("dlq", "list").out.strip() == "the dead-letter queue is empty"
    assert wfctl("dlq", "redrive").out.strip() == "redrove 0 messages to the work queue"
    actors = {e.actor for e in console.audit_rows() if e.action.startswith(("schedule.", "workflow.run", "dlq."))}
    assert "token:operator-token" in actors and not any(a.startswith("cli:") for a in actors)


def test_remote_cli_covers_run_control_reads_and_deletes(
    console: Console, queues: Any, wfctl: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator with only the API and a token can cancel, re-run, preview, read the ledger,
    the workflows and the audit trail; an admin can delete a schedule."""
    from datetime import UTC, datetime

    from tests.console.test_api import add_executions

    [running] = add_executions(console, 1, datetime.now(UTC), status="running")
    finished = add_executions(console, 251, datetime.now(UTC))
    remote_env(monkeypatch, console, "operator")
    cancelled = wfctl("executions", "cancel", running)
    assert cancelled.code == 0, cancelled.err
    assert cancelled.out.strip() == f"execution {running} is being stopped"
    new_input = tmp_path / "input.json"
    new_input.write_text('{"who": "from a file"}')
    rerun = wfctl("executions", "rerun", finished[0], "--from-step", "hello", "--input", f"@{new_input}")
    assert rerun.code == 0, rerun.err
    assert rerun.out.startswith(f"re-run of {finished[0]} from step hello enqueued (rerun:")
    assert json.loads(queues.drain()[0]["Body"])["input"] == {"who": "from a file"}
    # Longer than one API page (200): read a page at a time.
    assert len(wfctl("executions", "list", "--limit", "252", "-o", "json").json()) == 252
    upcoming = wfctl("schedules", "next", "nightly", "--count", "3", "-o", "json").json()
    assert len(upcoming) == 3 and all(row["local"].endswith(("T02:30:00+01:00", "T02:30:00+02:00")) for row in upcoming)
    assert wfctl("schedules", "history", "nightly", "-o", "json").json() == []
    assert [w["name"] for w in wfctl("workflows", "list", "-o", "json").json()] == ["greet"]
    assert wfctl("workflows", "show", "greet", "-o", "json").json()["definition"]["name"] == "greet"
    trail = wfctl("audit", "list", "--actor", "token:operator-token", "-o", "json").json()
    assert [(r["action"], r["target"]) for r in trail][:2] == [("execution.rerun", finished[0]), ("execution.cancel", running)]
    refused = wfctl("schedules", "delete", "nightly")
    assert refused.code == 2 and refused.err.strip() == "error: WFCTL_TOKEN: the operator role may not do this (needs admin)"
    monkeypatch.setenv("WFCTL_TOKEN", console.tokens["admin"])
    assert wfctl("schedules", "delete", "nightly").out.strip() == "schedule nightly deleted"
    assert wfctl("schedules", "list", "-o", "json").json() == []


@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        ("http://127.0.0.1:1", 1, "error: ApiUnreachable: cannot reach the API at http://127.0.0.1:1 (ConnectError: "),
        ("not-a-url", 2, "error: WFCTL_API_URL: 'not-a-url' is not an http:// or https:// URL"),
    ],
)
def test_remote_cli_names_an_api_it_cannot_use(
    wfctl: Any, monkeypatch: pytest.MonkeyPatch, url: str, code: int, message: str
) -> None:
    monkeypatch.setenv("WFCTL_API_URL", url)
    monkeypatch.setenv("WFCTL_TOKEN", "wfr_anything")
    result = wfctl("schedules", "list")
    assert result.code == code and result.err.startswith(message), result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


def test_remote_cli_refuses_what_the_token_may_not_do(
    console: Console, queues: Any, wfctl: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote_env(monkeypatch, console, "viewer")
    refused = wfctl("schedules", "pause", "nightly")
    assert refused.code == 2
    assert refused.err.strip() == "error: WFCTL_TOKEN: the viewer role may not do this (needs operator)"
    bad = wfctl("schedules", "backfill", "nightly", "--from", "soon", "--to", "2026-11-03T00:00:00Z")
    assert bad.code == 2 and bad.err.startswith("error: WFCTL_TOKEN: ")
    monkeypatch.setenv("WFCTL_TOKEN", console.tokens["operator"])
    bad = wfctl("schedules", "backfill", "nightly", "--from", "soon", "--to", "2026-11-03T00:00:00Z")
    assert bad.code == 2 and bad.err.startswith("error: from: 'soon' is not an ISO-8601 time")
    monkeypatch.setenv("WFCTL_TOKEN", "wfr_revoked-or-unknown")
    assert wfctl("executions", "list").err.startswith("error: WFCTL_TOKEN: a valid API token is required")
    monkeypatch.delenv("WFCTL_TOKEN")
    assert wfctl("executions", "list").err.startswith("error: WFCTL_TOKEN: is not set")
    assert queues.drain() == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_wfctl_serve_serves_health_and_the_api(db: str) -> None:
    tokens = seed(db)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db, "PYTHONPATH": str(ROOT), "CONSOLE_SECRET_KEY": "k" * 40}
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise AssertionError("wfctl serve did not become ready")
        api = httpx.get(f"http://127.0.0.1:{port}/api/v1/whoami", headers={"Authorization": f"Bearer {tokens['viewer']}"})
        assert api.json()["role"] == "viewer"
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_wfctl_serve_refuses_an_address_it_cannot_listen_on(db: str, wfctl: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = [
            (["--port", "99999"], "error: port: 99999 is not between 0 and 65535"),
            (["--port", "-1"], "error: port: -1 is not between 0 and 65535"),
            (["--port", str(port)], f"error: port: cannot listen on 127.0.0.1:{port} (Address already in use)"),
            (["--host", "no-such-host.invalid", "--port", "0"], "error: host: cannot resolve 'no-such-host.invalid'"),
        ]
        for options, message in cases:
            result = wfctl("serve", *options)
            assert result.code == 2 and result.err.startswith(message), result.err
            assert len(result.err.strip().splitlines()) == 1
