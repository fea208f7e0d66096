"""`wfctl local up` end to end, as a user runs it: embedded Postgres and SQS, real subprocesses."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = """
name: greet
steps:
  - {id: hello, type: log, with: {message: "hello {{ input.who | default('world') }}"}}
  - {id: shout, type: transform, with: {expression: "steps.hello.output"}}
"""

FAILING = """
name: always-fails
retry: {max_attempts: 3, backoff_seconds: 1, backoff_multiplier: 1}
steps:
  - {id: boom, type: fail, with: {message: "boom"}}
"""

pytestmark = pytest.mark.slow


def _env(marker: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "QUEUE_URL", "DLQ_URL", "AWS_ENDPOINT_URL"}}
    env["WFR_TEST_MARKER"] = marker
    env["PYTHONPATH"] = str(ROOT)
    return env


def _processes_with(marker: str, state_dir: Path) -> list[int]:
    """Live processes of ours: the marker in their environment (our process tree), or the state
    folder on their command line (the embedded Postgres, which runs as another user)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            ours = f"WFR_TEST_MARKER={marker}".encode() in (entry / "environ").read_bytes()
            if ours or str(state_dir).encode() in (entry / "cmdline").read_bytes():
                status = (entry / "status").read_text()
                if "State:\tZ" not in status:
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


class LocalUp:
    def __init__(self, state_dir: Path, marker: str) -> None:
        self.log = (state_dir.parent / f"up-{uuid.uuid4().hex[:6]}.log").open("w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "local", "up", "--state-dir", str(state_dir),
             "--tick-seconds", "2", "--no-view", "--sqs-port", "0", "--demo-port", "0", "--console-port", "0",
             "--examples"],
            cwd=ROOT, env=_env(marker), stdout=self.log, stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def wait_for(self, text: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            assert self.process.poll() is None, self.output()
            time.sleep(0.2)
        raise AssertionError(f"{text!r} not seen in time:\n{self.output()}")

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=90)


def wfctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def local_env(state_dir: Path, marker: str) -> dict[str, str]:
    result = wfctl(_env(marker), "local", "env", "--state-dir", str(state_dir), "-o", "json")
    assert result.returncode == 0, result.stderr
    return {**_env(marker), **json.loads(result.stdout)}


def executions(env: dict[str, str]) -> list[dict[str, Any]]:
    result = wfctl(env, "executions", "list", "-o", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_for_successes(env: dict[str, str], wanted: set[tuple[str, str]], timeout: float = 90) -> list[dict[str, Any]]:
    """Wait until a succeeded execution exists for every (workflow, trigger) in `wanted`."""
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = executions(env)
        if wanted <= {(r["workflow"], r["trigger"]) for r in rows if r["status"] == "succeeded"}:
            return rows
        time.sleep(1)
    raise AssertionError(f"not every run in {wanted} succeeded: {rows}")


def test_local_up_runs_scheduled_and_manual_runs_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    marker = uuid.uuid4().hex
    platform = LocalUp(state_dir, marker)
    try:
        platform.wait_for("ready;")
        env = local_env(state_dir, marker)
        workflow = tmp_path / "greet.yaml"
        workflow.write_text(WORKFLOW)
        assert wfctl(env, "workflows", "apply", "-f", str(workflow)).returncode == 0
        created = wfctl(env, "schedules", "create", "greet-often", "--workflow", "greet", "--cron", "* * * * *",
                        "--input", '{"who": "schedule"}')
        assert created.returncode == 0, created.stderr
        # As if created a minute ago: this minute's fire time is due at the next tick.
        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("UPDATE schedules SET next_run_at = date_trunc('minute', now())")
        assert wfctl(env, "run", "greet", "--input", '{"who": "manual"}').returncode == 0

        # The example's manual run calls the demo API on 127.0.0.1; ours runs on its schedule too.
        rows = wait_for_successes(env, {("health-check", "manual"), ("greet", "manual"), ("greet", "schedule")})
        manual = next(r for r in rows if r["trigger"] == "manual" and r["workflow"] == "greet")
        shown = json.loads(wfctl(env, "executions", "show", manual["id"], "-o", "json").stdout)
        assert [(s["id"], s["status"]) for s in shown["steps"]] == [("hello", "succeeded"), ("shout", "succeeded")]
        assert shown["steps"][0]["output"] == "hello manual"
        platform.wait_for("succeeded")  # the status lines report it too

        # The console on 127.0.0.1, with a sign-in link holding a fresh admin token.
        link = re.search(r"sign in: (http://127\.0\.0\.1:\d+)/login#token=(wfr_\S+)\)", platform.output())
        assert link is not None, platform.output()
        console_url, token = link.groups()
        # Notifications link to this console: the platform's processes are told where it is.
        assert env["CONSOLE_URL"] == console_url
        whoami = httpx.get(f"{console_url}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert whoami.json()["role"] == "admin"
        page = httpx.get(f"{console_url}/api/v1/executions", params={"workflow": "greet"},
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert manual["id"] in {item["id"] for item in page.json()["items"]}

        # A failing run is retried by the platform (dispatcher → spawner → runner) up to its limit.
        failing = tmp_path / "failing.yaml"
        failing.write_text(FAILING)
        assert wfctl(env, "workflows", "apply", "-f", str(failing)).returncode == 0
        # `run --wait` follows the retries and reports the last attempt.
        waited = wfctl(env, "run", "always-fails", "--wait", "-o", "json")
        assert waited.returncode == 1, waited.stderr
        final = json.loads(waited.stdout)
        assert (final["attempt"], final["trigger"], final["status"]) == (3, "retry", "failed")
        time.sleep(5)  # a few more ticks: no fourth attempt
        attempts = json.loads(wfctl(env, "executions", "list", "--workflow", "always-fails", "-o", "json").stdout)
        assert sorted((a["attempt"], a["trigger"], a["status"]) for a in attempts) == [
            (1, "manual", "failed"), (2, "retry", "failed"), (3, "retry", "failed"),
        ]

        assert platform.interrupt() == 0
        assert "stopped" in platform.output()
        assert _processes_with(marker, state_dir) == [], "processes left behind after Ctrl-C"

        history = {r["id"] for r in rows if r["status"] == "succeeded"}
        again = LocalUp(state_dir, marker)
        try:
            again.wait_for("ready;")
            env = local_env(state_dir, marker)
            assert history <= {r["id"] for r in executions(env)}
        finally:
            assert again.interrupt() == 0
        assert _processes_with(marker, state_dir) == []
    finally:
        if platform.process.poll() is None:
            platform.process.kill()
