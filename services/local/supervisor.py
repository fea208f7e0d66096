"""`wfctl local up`: the whole platform on one machine, with the cluster's code paths (docs/architecture.md).

The supervisor starts the embedded services (PostgreSQL, an SQS endpoint on 127.0.0.1) unless
the environment already names real ones, then runs the same commands the cluster runs: `wfctl
dispatch` once per tick (the CronJob) and `wfctl spawn --launcher local` (the Deployment), whose
local launcher starts `wfctl execute` per run (the Job). Shutdown goes in order: the spawner
drains, then the queue contents are saved, then the servers stop.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.core.db.migrate import upgrade
from services.core.queue import OutgoingMessage, Queue, sqs_client
from services.dispatcher.tick import TickSummary
from services.local.embedded import DUMMY_AWS_ENV, EmbeddedSqs, create_queues, start_postgres, start_sqs
from services.local.state import LocalState

log = logging.getLogger(__name__)

QUEUE_NAME = "workflow-runtime-local"
SPAWNER_GRACE_SECONDS = 45
# A spawner that keeps dying is restarted at most this often.
SPAWNER_RESTART_SECONDS = 10.0
WFCTL = [sys.executable, "-m", "services.cli"]


@dataclass
class LocalOptions:
    state_dir: Path
    reset: bool = False
    tick_seconds: float = 60.0
    sqs_port: int = 9324
    demo_port: int = 8099
    examples_dir: Path | None = None
    concurrency: int = 4
    view: bool = True
    #: The console's port on 127.0.0.1 (0 picks a free one); None leaves the console off.
    console_port: int | None = 8080


@dataclass
class LocalPlatform:
    """Owns every process and server of a local run; `start`, `run`, then `stop`."""

    options: LocalOptions
    state: LocalState = field(init=False)
    env: dict[str, str] = field(default_factory=dict)
    postgres: Any = None
    sqs: EmbeddedSqs | None = None
    demo: Any = None
    spawner: subprocess.Popen[bytes] | None = None
    spawner_started_at: float = 0.0
    console: Any = None
    console_sign_in_url: str | None = None
    stop_requested: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.state = LocalState(self.options.state_dir)

    # --- start ---------------------------------------------------------------------------

    def start(self, say: Callable[[str], None]) -> None:
        self.state.prepare(self.options.reset)
        env = dict(DUMMY_AWS_ENV)
        env["LOG_FORMAT"] = os.environ.get("LOG_FORMAT", "text")
        # Runs on this machine may call services on 127.0.0.1 (the examples' demo API does).
        env["RUNNER_DENY_PRIVATE_NETWORKS"] = os.environ.get("RUNNER_DENY_PRIVATE_NETWORKS", "0")
        env["INTEGRATION_ENCRYPTION_KEY"] = os.environ.get("INTEGRATION_ENCRYPTION_KEY") or self.state.encryption_key()
        database_url = os.environ.get("DATABASE_URL")
        if database_url:
            say("postgres: using DATABASE_URL")
        else:
            self.postgres, database_url = start_postgres(self.state.pgdata)
            say(f"postgres: embedded, data in {self.state.pgdata}")
        env["DATABASE_URL"] = database_url
        upgrade(database_url)
        if os.environ.get("QUEUE_URL"):
            env["QUEUE_URL"] = os.environ["QUEUE_URL"]
            env["DLQ_URL"] = os.environ.get("DLQ_URL", "")
            for key in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                if os.environ.get(key):
                    env[key] = os.environ[key]
            say("queue: using QUEUE_URL")
        else:
            # The embedded endpoint takes any credentials; boto3 in this process needs some.
            for key, value in DUMMY_AWS_ENV.items():
                os.environ.setdefault(key, value)
            self.sqs = start_sqs(self.options.sqs_port)
            client = sqs_client(env["AWS_REGION"], self.sqs.endpoint_url)
            env["QUEUE_URL"], env["DLQ_URL"] = create_queues(client, QUEUE_NAME)
            env["AWS_ENDPOINT_URL"] = self.sqs.endpoint_url
            restored = self._restore_queues(env)
            restored_note = f", {restored} messages restored" if restored else ""
            say(f"queue: embedded SQS at {self.sqs.endpoint_url}{restored_note}")
        self.env = env
        if self.options.console_port is not None:
            # First, so the dispatcher and the spawner know where notifications link to.
            self._start_console(database_url, say)
            if not os.environ.get("CONSOLE_URL"):
                env["CONSOLE_URL"] = self.console.url
        self.state.write_env(env)
        if self.options.examples_dir is not None:
            from services.local.demo_api import start_demo_api
            from services.local.examples import apply_examples

            self.demo = start_demo_api(self.options.demo_port)
            say(f"demo api: {self.demo.base_url}")
            queue = self._queues(env)["queue"]
            for line in apply_examples(self.options.examples_dir, self.demo.base_url, database_url, queue):
                say(line)
        self._start_spawner()
        say(f"spawner: pid {self.spawner.pid if self.spawner else '-'}, local launcher")

    def child_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def _start_spawner(self) -> None:
        command = [
            *WFCTL, "spawn", "--launcher", "local",
            "--max-local-runs", str(self.options.concurrency),
            "--runs-dir", str(self.state.root / "runs"),
            # Short long-polls keep Ctrl-C snappy; health on loopback only.
            "--wait-seconds", "5", "--reconcile-seconds", "10",
            "--health-host", "127.0.0.1", "--health-port", "0",
        ]
        logs = open(self.state.root / "spawner.log", "ab")  # noqa: SIM115 - lives as long as the child
        # A session of its own: Ctrl-C in the terminal reaches the supervisor only, which then
        # stops the children in order.
        self.spawner = subprocess.Popen(
            command, env=self.child_env(), stdout=logs, stderr=logs, start_new_session=True
        )
        self.spawner_started_at = time.monotonic()

    def _start_console(self, database_url: str, say: Callable[[str], None]) -> None:
        """The console on 127.0.0.1, in this process, with a fresh admin token for this run."""
        from services.console.server import start_in_thread
        from services.core.settings import ConsoleSettings
        from services.local.console import fresh_admin_token

        settings = ConsoleSettings.from_env({**os.environ, **self.env})
        self.console = start_in_thread(settings, database_url, "127.0.0.1", self.options.console_port or 0)
        token = fresh_admin_token(database_url)
        # The token rides in the URL's fragment: browsers never send it to the server or its logs.
        self.console_sign_in_url = f"{self.console.url}/login#token={token}"
        say(f"console: {self.console.url}/ (sign in: {self.console_sign_in_url})")

    # --- run -----------------------------------------------------------------------------

    def dispatch_once(self) -> str:
        """One tick, as the CronJob runs it; its summary read from `--output json`."""
        result = subprocess.run(
            [*WFCTL, "dispatch", "--output", "json"], env=self.child_env(), capture_output=True, text=True,
            timeout=120, start_new_session=True,
        )
        if result.returncode == 0:
            try:
                return TickSummary(**json.loads(result.stdout)).line()
            except (ValueError, TypeError):
                pass
        errors = result.stderr.strip().splitlines()
        return errors[-1] if errors else f"dispatch exited {result.returncode}"

    def run(self, on_tick: Callable[[str], None], on_idle: Callable[[], None]) -> None:
        """Tick the dispatcher on the wall clock until `stop_requested` is set."""
        next_tick = time.time()
        while not self.stop_requested.is_set():
            if time.time() >= next_tick:
                on_tick(self.dispatch_once())
                period = self.options.tick_seconds
                # Align to the wall clock (a minute tick runs a second into each minute).
                next_tick = (time.time() // period + 1) * period + (1 if period >= 60 else 0)
            if self.spawner is not None and self.spawner.poll() is not None:
                if time.monotonic() - self.spawner_started_at >= SPAWNER_RESTART_SECONDS:
                    log_file = self.state.root / "spawner.log"
                    on_tick(f"spawner exited with {self.spawner.returncode}; restarting it (log: {log_file})")
                    self._start_spawner()
            on_idle()
            self.stop_requested.wait(min(1.0, max(0.05, next_tick - time.time())))

    # --- stop ----------------------------------------------------------------------------

    def stop(self, say: Callable[[str], None]) -> None:
        if self.spawner is not None and self.spawner.poll() is None:
            say("stopping: spawner drains what it holds…")
            self.spawner.send_signal(signal.SIGTERM)
            try:
                self.spawner.wait(timeout=SPAWNER_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                say("stopping: spawner did not finish in time; stopping it")
        if self.spawner is not None:
            self._stop_group(self.spawner.pid)
        if self.console is not None:
            self.console.stop()
        if self.demo is not None:
            self.demo.shutdown()
        if self.sqs is not None and "QUEUE_URL" in self.env:
            saved = self._save_queues()
            if saved:
                say(f"stopping: {saved} queued messages saved for the next start")
        if self.sqs is not None:
            self.sqs.stop()
        if self.postgres is not None:
            self.postgres.cleanup()
        say("stopped")

    @staticmethod
    def _stop_group(group: int) -> None:
        """Stop whatever is left in the spawner's session (runs it started): TERM, then KILL."""
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 2.0)):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    os.killpg(group, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)

    # --- queue contents across restarts ----------------------------------------------------

    def _queues(self, env: dict[str, str]) -> dict[str, Queue]:
        client = sqs_client(env["AWS_REGION"], env["AWS_ENDPOINT_URL"])
        return {"queue": Queue(client, env["QUEUE_URL"]), "dlq": Queue(client, env["DLQ_URL"])}

    def _save_queues(self) -> int:
        """Save every message the embedded queues hold before the in-memory endpoint stops.

        The endpoint runs in this process, so its store is read directly: messages still delayed
        by jitter (invisible to ReceiveMessage) are saved too, with what is left of their delay.
        Nothing is deleted, and the file is replaced atomically, so an interrupted save loses
        nothing that the previous snapshot or the queue held.
        """
        from moto.sqs.models import sqs_backends

        now_ms = time.time() * 1000
        saved: dict[str, list[dict[str, Any]]] = {}
        for name, key in (("queue", "QUEUE_URL"), ("dlq", "DLQ_URL")):
            account, queue_name = self.env[key].rstrip("/").split("/")[-2:]
            queue = sqs_backends[account][self.env["AWS_REGION"]].queues.get(queue_name)
            held = list(queue._messages) if queue is not None else []  # noqa: SLF001 - moto's store
            saved[name] = [
                {
                    "body": message.body,
                    "attributes": {
                        k: v["StringValue"] for k, v in (message.message_attributes or {}).items() if "StringValue" in v
                    },
                    "delay_seconds": max(0, round((message.delayed_until - now_ms) / 1000)),
                }
                for message in held
            ]
        partial = self.state.queue_snapshot.with_suffix(".partial")
        partial.write_text(json.dumps(saved))
        os.replace(partial, self.state.queue_snapshot)
        return sum(len(m) for m in saved.values())

    def _restore_queues(self, env: dict[str, str]) -> int:
        if not self.state.queue_snapshot.exists():
            return 0
        saved = json.loads(self.state.queue_snapshot.read_text())
        restored = 0
        for name, queue in self._queues(env).items():
            messages = [
                OutgoingMessage(
                    body=m["body"], attributes=m.get("attributes") or None, delay_seconds=m.get("delay_seconds", 0)
                )
                for m in saved.get(name, [])
            ]
            restored += queue.send_batch(messages)
        self.state.queue_snapshot.unlink()
        return restored


def now_text() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S")
