"""The wfctl commands that belong to the scheduling core, for people and scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.core.db.session import session_factory
from services.core.executions import insert_execution
from services.core.messages import parse_message

WORKFLOW = """
name: report
timeout_seconds: 60
retry: {max_attempts: 2, backoff_seconds: 5}
steps:
  - {id: hello, type: log, with: {message: "hello"}}
"""


@pytest.fixture
def applied(db, queues, wfctl, tmp_path: Path) -> Path:
    path = tmp_path / "report.yaml"
    path.write_text(WORKFLOW)
    result = wfctl("workflows", "apply", "-f", str(path))
    assert result.code == 0 and "workflow report created (version 1)" in result.out
    return path


def test_workflows_apply_is_create_or_update_by_name(applied, wfctl) -> None:
    assert "applied (version 1)" in wfctl("workflows", "apply", "-f", str(applied)).out  # unchanged
    applied.write_text(WORKFLOW.replace("hello\"}", "hello again\"}"))
    assert "applied (version 2)" in wfctl("workflows", "apply", "-f", str(applied)).out
    listed = wfctl("workflows", "list", "--output", "json").json()
    assert [(w["name"], w["version"], w["steps"]) for w in listed] == [("report", 2, 1)]
    shown = wfctl("workflows", "show", "report", "-o", "json").json()
    assert shown["definition"]["steps"][0]["with"]["message"] == "hello again"
    assert shown["definition"]["retry"] == {"max_attempts": 2, "backoff_seconds": 5, "backoff_multiplier": 2}
    assert "report" in wfctl("workflows", "list").out


def test_schedule_lifecycle(applied, wfctl) -> None:
    created = wfctl(
        "schedules", "create", "nightly", "--workflow", "report", "--cron", "30 2 * * *",
        "--timezone", "Europe/Berlin", "--input", '{"k": 1}', "--catchup", "all", "--overlap", "skip",
        "--jitter", "30", "-o", "json",
    )
    assert created.code == 0, created.err
    data = created.json()
    assert (data["cron"], data["timezone"], data["catchup"], data["overlap"], data["jitter_seconds"]) == (
        "30 2 * * *", "Europe/Berlin", "all", "skip", 30,
    )
    assert data["input"] == {"k": 1} and data["enabled"] is True and data["next_run_at"]
    [row] = wfctl("schedules", "list", "-o", "json").json()
    assert row["name"] == "nightly" and row["workflow"] == "report"
    assert "nightly" in wfctl("schedules", "list").out
    upcoming = wfctl("schedules", "next", "nightly", "--count", "3", "-o", "json").json()
    assert len(upcoming) == 3 and all(t["local"].endswith(("+01:00", "+02:00")) for t in upcoming)
    assert all("T02:30:00" in t["local"] or "T03:00:00" in t["local"] for t in upcoming)
    assert wfctl("schedules", "pause", "nightly").code == 0
    assert wfctl("schedules", "show", "nightly", "-o", "json").json()["enabled"] is False
    assert wfctl("schedules", "resume", "nightly").code == 0
    assert wfctl("schedules", "show", "nightly", "-o", "json").json()["enabled"] is True
    assert wfctl("schedules", "delete", "nightly").code == 0
    assert wfctl("schedules", "list", "-o", "json").json() == []


def test_run_enqueues_a_manual_message(applied, queues, wfctl) -> None:
    result = wfctl("run", "report", "--input", '{"who": "ops"}')
    assert result.code == 0, result.err
    [message] = queues.drain()
    body = json.loads(message["Body"])
    assert body["trigger"] == "manual" and body["dedup_key"].startswith("manual:")
    assert body["input"] == {"who": "ops"} and body["schedule_id"] is None and body["attempt"] == 1
    assert body["dedup_key"] in result.out


def test_executions_list_and_show(applied, db, queues, wfctl) -> None:
    wfctl("run", "report")
    [message] = queues.drain()
    with session_factory(db)() as session, session.begin():
        execution, created = insert_execution(session, parse_message(message["Body"]))
        assert created
        execution_id = str(execution.id)
    rows = wfctl("executions", "list", "-o", "json").json()
    assert [(r["id"], r["status"], r["trigger"]) for r in rows] == [(execution_id, "pending", "manual")]
    assert wfctl("executions", "list", "--status", "failed", "-o", "json").json() == []
    assert len(wfctl("executions", "list", "--workflow", "report", "-o", "json").json()) == 1
    shown = wfctl("executions", "show", execution_id, "-o", "json").json()
    assert shown["id"] == execution_id and shown["steps"] == [] and shown["dedup_key"].startswith("manual:")
    assert wfctl("executions", "show", execution_id[:8], "-o", "json").json()["id"] == execution_id
    assert execution_id[:8] in wfctl("executions", "list").out


def test_db_upgrade_is_idempotent(db, wfctl) -> None:
    result = wfctl("db", "upgrade")
    assert result.code == 0 and "database at revision" in result.out


def test_help_lists_every_command_group(wfctl) -> None:
    result = wfctl("--help")
    for group in ("db", "workflows", "schedules", "run", "executions", "dispatch"):
        assert group in result.out


def test_wait_budget_covers_every_attempt_and_back_off() -> None:
    from services.dispatcher.triggers import wait_budget_seconds

    single = {"timeout_seconds": 60}
    assert wait_budget_seconds(single, margin_seconds=120) == 180
    retried = {"timeout_seconds": 60, "retry": {"max_attempts": 3, "backoff_seconds": 10, "backoff_multiplier": 2}}
    assert wait_budget_seconds(retried, margin_seconds=120) == 3 * 180 + 10 + 20
