"""The operator API over HTTP against the running server: every route, roles, bad input, paging."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from services.core.db.models import Execution, Schedule, Workflow
from services.core.db.session import session_factory
from tests.console.conftest import Console


def schedule_enabled(console: Console, name: str = "nightly") -> bool:
    with session_factory(console.database_url)() as session:
        return bool(session.scalar(select(Schedule.enabled).where(Schedule.name == name)))


def add_executions(console: Console, count: int, created_at: datetime, status: str = "succeeded") -> list[str]:
    """Executions inserted directly, all with the same creation time (the hard case for paging)."""
    with session_factory(console.database_url)() as session, session.begin():
        workflow = session.scalars(select(Workflow)).first()
        assert workflow is not None
        rows = [
            Execution(
                workflow_id=workflow.id, trigger="manual", dedup_key=f"manual:{uuid.uuid4()}", status=status,
                input={}, created_at=created_at, started_at=created_at, finished_at=created_at + timedelta(seconds=2),
            )
            for _ in range(count)
        ]
        session.add_all(rows)
        session.flush()
        return [str(r.id) for r in rows]


def test_reads_for_a_viewer(console: Console, queues: Any) -> None:
    [execution_id] = add_executions(console, 1, datetime.now(UTC))
    with console.client("viewer") as api:
        assert api.get("/api/v1/whoami").json() == {"name": "viewer-token", "role": "viewer", "actor": "token:viewer-token"}
        workflows = api.get("/api/v1/workflows").json()["items"]
        assert [w["name"] for w in workflows] == ["greet"]
        greet = api.get("/api/v1/workflows/greet").json()
        assert [s["id"] for s in greet["definition"]["steps"]] == ["hello", "pause", "shout"]
        schedules = api.get("/api/v1/schedules").json()["items"]
        assert schedules[0]["name"] == "nightly" and schedules[0]["timezone"] == "Europe/Berlin"
        nightly = api.get("/api/v1/schedules/nightly", params={"count": 3}).json()
        assert len(nightly["next_fire_times"]) == 3
        for fire in nightly["next_fire_times"]:
            local = datetime.fromisoformat(fire["local"])
            assert (local.hour, local.minute) == (2, 30)  # 02:30 in Berlin, whatever the UTC offset
            assert datetime.fromisoformat(fire["utc"].replace("Z", "+00:00")) == local
        detail = api.get(f"/api/v1/executions/{execution_id}").json()
        assert detail["id"] == execution_id and detail["steps"] == []
        assert api.get(f"/api/v1/executions/{execution_id[:8]}").json()["id"] == execution_id
        assert api.get("/api/v1/executions", params={"workflow": "greet", "status": "succeeded"}).json()["items"][0]["id"] == execution_id
        assert api.get("/api/v1/executions", params={"status": "failed"}).json() == {"items": [], "next_cursor": None}
        assert api.get("/api/v1/executions", params={"schedule": "nightly"}).json()["items"] == []
        assert api.get("/api/v1/dlq").json() == {"items": []}
        assert api.get("/api/v1/integrations").json() == {"items": []}
        assert api.get("/api/v1/audit", params={"target_kind": "schedule", "target": "nightly"}).json()["items"][0]["action"] == "schedule.create"
        metrics = api.get("/metrics")
        assert metrics.status_code == 200
        assert 'workflow_executions{status="succeeded"} 1.0' in metrics.text
        assert "workflow_due_schedules 0.0" in metrics.text
        assert "workflow_dispatcher_lag_seconds" in metrics.text
        assert "workflow_queued_runs 0.0" in metrics.text
        assert 'workflow_notifications{status="pending"} 0.0' in metrics.text
        assert api.get("/api/v1/channels").json() == {"items": []}
        assert api.get("/api/v1/notifications?status=failed").json() == {"items": []}
        assert api.get("/api/v1/notifications?status=lost").status_code == 400
        document = api.get("/api/openapi.json").json()
        assert "/api/v1/executions" in document["paths"] and "/api/v1/schedules/{name}/pause" in document["paths"]
        assert "swagger-ui" in api.get("/api/docs").text


def test_health_needs_no_token_and_readiness_checks_the_database(console: Console) -> None:
    with console.client() as anonymous:
        assert anonymous.get("/healthz").text == "ok\n"
        assert anonymous.get("/readyz").status_code == 200


def test_operator_actions_run_pause_resume_backfill_redrive(console: Console, queues: Any) -> None:
    before = console.audit_count()
    with console.client("operator") as api:
        run = api.post("/api/v1/workflows/greet/run", json={"input": {"who": "api"}})
        assert run.status_code == 202
        [message] = queues.drain()
        body = json.loads(message["Body"])
        assert body["dedup_key"] == run.json()["dedup_key"] and body["input"] == {"who": "api"}

        assert api.post("/api/v1/schedules/nightly/pause").json()["enabled"] is False
        assert not schedule_enabled(console)
        assert api.post("/api/v1/schedules/nightly/resume").json()["enabled"] is True
        assert schedule_enabled(console)

        now = datetime.now(UTC)
        backfill = api.post(
            "/api/v1/schedules/nightly/backfill",
            json={"from": (now - timedelta(days=3)).isoformat(), "to": (now - timedelta(minutes=1)).isoformat()},
        )
        assert backfill.status_code == 202 and backfill.json()["sent"] == 3
        assert len(queues.drain()) == 3

        queues.client.send_message(QueueUrl=queues.dlq_url, MessageBody="not json")
        letters = api.get("/api/v1/dlq").json()["items"]
        assert [letter["body"] for letter in letters] == ["not json"]
        assert api.post("/api/v1/dlq/redrive").json()["moved"] == 1
        assert [m["Body"] for m in queues.drain()] == ["not json"]

    actions = [(e.actor, e.action, e.target) for e in console.audit_rows()[before:]]
    assert actions == [
        ("token:operator-token", "workflow.run", "greet"),
        ("token:operator-token", "schedule.pause", "nightly"),
        ("token:operator-token", "schedule.resume", "nightly"),
        ("token:operator-token", "schedule.backfill", "nightly"),
        ("token:operator-token", "dlq.redrive", "dlq"),
    ]


def test_admin_changes_workflows_schedules_and_tokens(console: Console, queues: Any) -> None:
    with console.client("admin") as api:
        definition = {"name": "second", "steps": [{"id": "a", "type": "log", "with": {"message": "x"}}]}
        assert api.put("/api/v1/workflows", json={"definition": definition}).json()["created"] is True
        created = api.post("/api/v1/schedules", json={"name": "hourly", "workflow": "second", "cron": "0 * * * *"})
        assert created.status_code == 201 and created.json()["next_run_at"]
        made = api.post("/api/v1/tokens", json={"name": "ci", "role": "operator"})
        assert made.status_code == 201
        token = made.json()["token"]
        listed = api.get("/api/v1/tokens").json()["items"]
        assert {t["name"] for t in listed} == {"viewer-token", "operator-token", "admin-token", "ci"}
        assert token not in json.dumps(listed)
        assert api.delete("/api/v1/schedules/hourly").json()["message"] == "schedule hourly deleted"
        assert api.delete("/api/v1/tokens/ci").status_code == 200
    with console.client() as anonymous:
        assert anonymous.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    actions = [e.action for e in console.audit_rows() if e.actor == "token:admin-token"]
    assert actions == ["workflow.create", "schedule.create", "token.create", "schedule.delete", "token.revoke"]


@pytest.mark.parametrize(
    ("role", "method", "path", "body"),
    [
        ("viewer", "post", "/api/v1/schedules/nightly/pause", None),
        ("viewer", "post", "/api/v1/workflows/greet/run", {"input": {}}),
        ("viewer", "post", "/api/v1/schedules/nightly/backfill", {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}),
        ("viewer", "post", "/api/v1/dlq/redrive", None),
        ("viewer", "get", "/api/v1/tokens", None),
        ("operator", "delete", "/api/v1/schedules/nightly", None),
        ("operator", "post", "/api/v1/tokens", {"name": "x", "role": "admin"}),
        ("operator", "delete", "/api/v1/tokens/admin-token", None),
        ("operator", "put", "/api/v1/workflows", {"definition": {"name": "x", "steps": [{"id": "a", "type": "log"}]}}),
        ("operator", "post", "/api/v1/schedules", {"name": "x", "workflow": "greet", "cron": "* * * * *"}),
    ],
)
def test_a_role_too_small_gets_403_and_nothing_changes(
    console: Console, queues: Any, role: str, method: str, path: str, body: Any
) -> None:
    before = console.audit_count()
    with console.client(role) as api:
        response = api.request(method.upper(), path, json=body)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["message"].startswith(f"the {role} role may not")
    assert console.audit_count() == before
    assert schedule_enabled(console)
    assert queues.drain() == []
    with session_factory(console.database_url)() as session:
        assert session.scalar(select(Schedule.name).where(Schedule.name == "nightly")) == "nightly"
        assert session.scalar(select(Workflow.name).where(Workflow.name == "x")) is None


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("get", "/api/v1/executions?status=bogus", None, 400, "status"),
        ("get", "/api/v1/executions?limit=0", None, 400, "limit"),
        ("get", "/api/v1/executions?limit=abc", None, 400, "limit"),
        ("get", "/api/v1/executions?cursor=garbage", None, 400, "cursor"),
        ("get", "/api/v1/executions?workflow=nope", None, 400, "workflow"),
        ("get", "/api/v1/executions/not-an-id", None, 404, "execution"),
        ("get", "/api/v1/workflows/nope", None, 404, "workflow"),
        ("get", "/api/v1/schedules/nope", None, 404, "schedule"),
        ("get", "/api/v1/schedules/nightly?count=0", None, 400, "count"),
        ("post", "/api/v1/workflows/nope/run", {"input": {}}, 404, "workflow"),
        ("post", "/api/v1/workflows/greet/run", {"input": [1, 2]}, 400, "input"),
        ("post", "/api/v1/schedules/nope/pause", None, 404, "schedule"),
        ("post", "/api/v1/schedules/nightly/backfill", {"from": "yesterday", "to": "2026-01-01T00:00:00Z"}, 400, "from"),
        ("post", "/api/v1/schedules/nightly/backfill", {"from": "2026-01-01T00:00:00Z"}, 400, "to"),
        ("post", "/api/v1/schedules/nightly/backfill", {"from": "2026-01-01T00:00:00Z", "to": "2099-01-01T00:00:00Z"}, 400, "to"),
        ("post", "/api/v1/schedules", {"name": "bad", "workflow": "greet", "cron": "61 * * * *"}, 400, "cron"),
        ("post", "/api/v1/schedules", {"name": "bad", "workflow": "greet", "cron": "* * * * *", "timezone": "Mars/Base"}, 400, "timezone"),
        ("post", "/api/v1/schedules", {"name": "nightly", "workflow": "greet", "cron": "* * * * *"}, 409, "name"),
        ("post", "/api/v1/schedules", {"workflow": "greet", "cron": "* * * * *"}, 400, "name"),
        ("post", "/api/v1/tokens", {"name": "x", "role": "root"}, 400, "role"),
        ("post", "/api/v1/tokens", {"name": "viewer-token", "role": "viewer"}, 409, "name"),
        ("put", "/api/v1/workflows", {"definition": {"name": "x", "steps": []}}, 400, "steps"),
        ("delete", "/api/v1/tokens/nope", None, 404, "token"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field_and_changes_nothing(
    console: Console, queues: Any, method: str, path: str, body: Any, status: int, field: str
) -> None:
    before = console.audit_count()
    with console.client("admin") as api:
        response = api.request(method.upper(), path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field, response.json()
    assert response.json()["error"]["message"]
    assert console.audit_count() == before
    assert queues.drain() == []


def test_pagination_is_stable_across_ties_and_new_runs(console: Console) -> None:
    same_time = datetime.now(UTC) - timedelta(minutes=5)
    ids = set(add_executions(console, 7, same_time)) | set(add_executions(console, 3, same_time - timedelta(minutes=1)))
    seen: list[str] = []
    cursor = None
    with console.client("viewer") as api:
        for page_number in range(10):
            params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = api.get("/api/v1/executions", params=params).json()
            seen.extend(item["id"] for item in page["items"])
            if page_number == 0:
                add_executions(console, 2, datetime.now(UTC))  # newer runs arrive mid-way
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert len(seen) == len(set(seen)) == 10
    assert set(seen) == ids
    created = [(item["created_at"], item["id"]) for item in _all(console)]
    assert created == sorted(created, reverse=True)


def _all(console: Console) -> list[dict[str, Any]]:
    with console.client("viewer") as api:
        return api.get("/api/v1/executions", params={"limit": 200}).json()["items"]


def test_integrations_show_names_and_types_only(console: Console) -> None:
    from services.core.crypto import generate_key, keyring_from_value
    from services.core.integrations import set_integration

    keyring = keyring_from_value(generate_key())
    with session_factory(console.database_url)() as session, session.begin():
        set_integration(session, "items-api", {"type": "bearer", "token": "s3cret-bearer-value"}, keyring)
    with console.client("viewer") as api:
        response = api.get("/api/v1/integrations")
    assert [(i["name"], i["type"]) for i in response.json()["items"]] == [("items-api", "bearer")]
    assert "s3cret-bearer-value" not in response.text


def test_run_control_and_the_ledger_over_the_api(console: Console, queues: Any) -> None:
    """Cancel a waiting run, re-run a finished one from a step, read the schedule's fire-time
    ledger; a viewer may read the ledger but neither cancel nor re-run."""
    [waiting] = add_executions(console, 1, datetime.now(UTC), status="pending")
    [finished] = add_executions(console, 1, datetime.now(UTC) - timedelta(hours=1), status="succeeded")
    before = console.audit_count()
    with console.client("viewer") as api:
        assert api.post(f"/api/v1/executions/{waiting}/cancel").status_code == 403
        assert api.post(f"/api/v1/executions/{finished}/rerun", json={}).status_code == 403
        assert api.get("/api/v1/schedules/nightly/history").json() == {"items": []}
    assert console.audit_count() == before
    with console.client("operator") as api:
        cancelled = api.post(f"/api/v1/executions/{waiting}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["action"] == "cancelled"
        assert api.get(f"/api/v1/executions/{waiting}").json()["status"] == "cancelled"
        refused = api.post(f"/api/v1/executions/{waiting}/rerun", json={"from_step": "nope"})
        assert refused.status_code == 400 and refused.json()["error"]["field"] == "from_step"  # the body's key, not the CLI's option
        rerun = api.post(f"/api/v1/executions/{finished}/rerun", json={})
        assert rerun.status_code == 202
        [message] = queues.drain()
        body = json.loads(message["Body"])
        assert (body["trigger"], body["rerun_of"], body["dedup_key"]) == ("rerun", finished, rerun.json()["dedup_key"])
        again = api.post(f"/api/v1/executions/{waiting}/cancel")  # idempotent
        assert again.status_code == 200 and again.json()["action"] == "already"
        done = api.post(f"/api/v1/executions/{finished}/cancel")  # a finished run is refused
        assert done.status_code == 400 and done.json()["error"]["field"] == "execution"
        now = datetime.now(UTC)
        api.post("/api/v1/schedules/nightly/backfill", json={"from": (now - timedelta(days=2)).isoformat(),
                                                           "to": (now - timedelta(minutes=1)).isoformat()})
        queues.drain()
        history = api.get("/api/v1/schedules/nightly/history").json()["items"]
    assert [h["decision"] for h in history] == ["sent", "sent"]
    assert all(h["trigger"] == "backfill" and h["local"].endswith("+01:00") for h in history)
    actions = [(e.action, e.target) for e in console.audit_rows()[before:]]
    assert actions[:2] == [("execution.cancel", waiting), ("execution.rerun", finished)]
