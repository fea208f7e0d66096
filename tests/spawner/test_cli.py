"""`wfctl spawn` as a process (SIGTERM mid-batch), `wfctl dlq list/redrive`, health endpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from services.core.db.models import ExecutionStatus
from tests.spawner.conftest import (
    NAMESPACE,
    WORKTREE,
    executions,
    manual_message,
    queue_empty,
    send,
    wait_for,
)


def test_cli_modules_import_no_heavy_clients():
    """The runner's start time: importing the CLI must not import boto3, kubernetes, prometheus."""
    code = (
        "import sys, services.cli.main; "
        "heavy = [m for m in ('boto3', 'kubernetes', 'prometheus_client') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=WORKTREE,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(WORKTREE)},
    )
    assert out.stdout.strip() == ""


def test_sigterm_mid_batch_loses_nothing(db, queues, emulator, workflow, tmp_path):
    emulator.slow_creates(0.25)
    messages = [manual_message(workflow) for _ in range(20)]
    send(queues, *(m.to_json() for m in messages))
    env = {
        **os.environ,
        "PYTHONPATH": str(WORKTREE),
        "KUBECONFIG": str(emulator.kubeconfig(tmp_path / "kubeconfig")),
        "RUNNER_NAMESPACE": NAMESPACE,
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli",
            "spawn",
            "--launcher",
            "kubernetes",
            "--concurrency",
            "4",
            "--runner-template",
            str(WORKTREE / "services/spawner/runner-template.yaml"),
            "--health-port",
            "-1",
            "--wait-seconds",
            "1",
            "--grace-seconds",
            "10",
        ],
        cwd=WORKTREE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_for(lambda: len(emulator.jobs()) >= 2, timeout=15), "no Job was created"
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _, err = process.communicate(timeout=15)
        assert process.returncode == 0, err.decode()[-2000:]
        assert time.monotonic() - started < 10
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # Every message is either done (execution starting with its Job) or visible again right now —
    # none is stuck invisible until its 120 s visibility timeout.
    visible = {json.loads(m["Body"])["dedup_key"] for m in queues.drain()}
    done = {e.dedup_key for e in executions(db) if e.status == ExecutionStatus.STARTING}
    everything = {m.dedup_key for m in messages}
    assert done, "nothing was processed before the signal"
    assert visible, "the signal came after everything was processed"
    assert done | visible == everything
    assert len(emulator.jobs()) == len({e.id for e in executions(db)})
    assert queue_empty(queues)


def test_dlq_list_and_redrive(db, queues, wfctl):
    from services.core.queue import OutgoingMessage, Queue
    from services.spawner.dead_letters import REASON_ATTRIBUTE

    dlq = Queue(queues.client, queues.dlq_url)
    dlq.send_batch(
        [
            OutgoingMessage(
                body='{"a": 1}', attributes={REASON_ATTRIBUTE: "malformed message: unsupported version None"}
            ),
            OutgoingMessage(body="not json", attributes={REASON_ATTRIBUTE: "malformed message: body is not JSON"}),
        ]
    )
    listed = wfctl("dlq", "list", "--output", "json")
    assert listed.code == 0, listed.err
    rows = listed.json()
    assert sorted(r["reason"] for r in rows) == [
        "malformed message: body is not JSON",
        "malformed message: unsupported version None",
    ]
    assert all(r["receive_count"] >= 1 and r["age_seconds"] >= 0 for r in rows)
    table = wfctl("dlq", "list")
    assert table.code == 0 and "body is not JSON" in table.out
    # Listing lost nothing: both are still there and visible.
    again = wfctl("dlq", "list", "--output", "json").json()
    assert len(again) == 2

    moved = wfctl("dlq", "redrive")
    assert moved.code == 0, moved.err
    assert moved.out.strip() == "redrove 2 messages to the work queue"
    back = queues.drain()
    assert sorted(m["Body"] for m in back) == sorted(['{"a": 1}', "not json"])
    assert all("reason" not in (m.get("MessageAttributes") or {}) for m in back)
    assert wfctl("dlq", "list", "--output", "json").json() == []


def test_spawn_rejects_bad_options(db, queues, wfctl):
    result = wfctl("spawn", "--launcher", "docker", "--health-port", "-1")
    assert result.code == 2
    assert result.err.strip() == "error: launcher: must be one of kubernetes, local, got 'docker'"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_health_endpoints(db, queues, emulator, workflow, start_spawner):
    send(queues, manual_message(workflow).to_json())
    spawner = start_spawner(health_port=0, health_host="127.0.0.1")
    base = f"http://127.0.0.1:{spawner.parts.health.port}"
    assert wait_for(lambda: len(emulator.jobs()) == 1 and spawner.parts.spawner.idle())
    assert _get(f"{base}/healthz") == (200, "ok\n")
    assert _get(f"{base}/readyz") == (200, "ready\n")
    status, body = _get(f"{base}/metrics")
    assert status == 200
    assert "spawner_messages_received_total 1.0" in body
    assert "spawner_jobs_created_total 1.0" in body
    assert "spawner_message_to_job_seconds_count 1.0" in body
    assert _get(f"{base}/nope")[0] == 404
    spawner.parts.heartbeat.max_age_seconds = -1  # as if the loop had stalled
    assert _get(f"{base}/healthz")[0] == 503
    spawner.stop()


def test_readiness_reports_an_unreachable_database(monkeypatch):
    from services.core.queue import Queue
    from services.spawner.service import readiness_check

    class FineQueue(Queue):
        def __init__(self) -> None:
            pass

        def attributes(self) -> dict[str, str]:
            return {}

    check = readiness_check(FineQueue(), "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    assert check().startswith("Postgres unreachable")


def test_second_sigterm_exits_at_once(db, queues, emulator, workflow, tmp_path):
    emulator.slow_creates(8.0)  # the message in hand would hold a graceful stop for seconds
    send(queues, manual_message(workflow).to_json())
    env = {
        **os.environ,
        "PYTHONPATH": str(WORKTREE),
        "KUBECONFIG": str(emulator.kubeconfig(tmp_path / "kubeconfig")),
        "RUNNER_NAMESPACE": NAMESPACE,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli",
            "spawn",
            "--runner-template",
            str(WORKTREE / "services/spawner/runner-template.yaml"),
            "--health-port",
            "-1",
            "--wait-seconds",
            "1",
            "--grace-seconds",
            "20",
        ],
        cwd=WORKTREE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_for(lambda: emulator.creates_seen() >= 1, timeout=15), "the Job create never started"
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert process.poll() is None  # the first one waits for the message in hand
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        assert time.monotonic() - started < 4  # not the 8 s the slow Job create would hold it
        assert process.returncode == 143
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_liveness_fails_when_the_database_does_not_answer():
    """A spawner whose connections no longer reach Postgres is restarted by its liveness probe."""
    from services.spawner.health import HealthServer, Heartbeat
    from services.spawner.metrics import SpawnerMetrics
    from services.spawner.service import database_check

    unreachable = database_check("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    server = HealthServer(
        Heartbeat(max_age_seconds=60), lambda: None, SpawnerMetrics(), "127.0.0.1", 0, liveness=unreachable
    ).start()
    try:
        status, body = _get(f"http://127.0.0.1:{server.port}/healthz")
    finally:
        server.stop()
    assert status == 503 and body.startswith("Postgres unreachable")
