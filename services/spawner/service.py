"""Assembles the spawner from its configuration: queues, database, launcher, template, health.

`wfctl spawn` is a thin shell over `run_spawner`; tests build the same pieces with `build_spawner`
and drive them in a thread.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy import text

from services.core.db.session import session_factory
from services.core.errors import UserError
from services.core.queue import Queue, sqs_client
from services.core.settings import Settings
from services.spawner.consume import Spawner, SpawnerOptions, queue_settings
from services.spawner.health import HealthServer, Heartbeat
from services.spawner.launchers.base import Launcher
from services.spawner.message_handler import Checkpoint, MessageHandler
from services.spawner.metrics import SpawnerMetrics
from services.spawner.reconciler import Reconciler
from services.spawner.run_control import RunControl
from services.spawner.runner_template import (
    DEFAULT_TEMPLATE_NAME,
    DEFAULT_TEMPLATE_PATH,
    RunnerTemplate,
    fetch_template,
    load_template_file,
)

log = logging.getLogger(__name__)

LAUNCHERS = ("kubernetes", "local")
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
FORCED_EXIT_STATUS = 143  # 128 + SIGTERM, as if the default handler had run


@dataclass(frozen=True)
class SpawnConfig:
    launcher: str = "kubernetes"
    concurrency: int = 8
    drain: bool = False
    runner_template: Path | None = None
    template_name: str | None = None
    namespace: str | None = None
    health_host: str = "0.0.0.0"
    health_port: int | None = 8080
    wait_seconds: int = 20
    reconcile_seconds: float = 30.0
    start_timeout_seconds: float = 600.0
    grace_seconds: float = 25.0
    retry_backoff_seconds: int = 5
    runner_command: Sequence[str] | None = None
    local_max_running: int = 4
    local_runs_dir: Path | None = None
    kube_api_client: Any = None  # tests inject a client configured for an emulator
    checkpoint: Checkpoint | None = field(default=None, compare=False)

    def check(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise UserError("launcher", f"must be one of {', '.join(LAUNCHERS)}, got {self.launcher!r}")
        if not 1 <= self.concurrency <= 256:
            raise UserError("concurrency", f"must be between 1 and 256, got {self.concurrency}")
        if not 0 <= self.wait_seconds <= 20:
            raise UserError("wait-seconds", f"must be between 0 and 20 (the SQS maximum), got {self.wait_seconds}")
        if self.health_port is not None and not 0 <= self.health_port <= 65535:
            raise UserError("health-port", f"must be a TCP port, got {self.health_port}")


def runner_namespace(config: SpawnConfig, env: dict[str, str] | None = None) -> str:
    env = dict(os.environ) if env is None else env
    if config.namespace:
        return config.namespace
    if env.get("RUNNER_NAMESPACE"):
        return env["RUNNER_NAMESPACE"]
    if SERVICE_ACCOUNT_NAMESPACE.exists():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    return "default"


def make_launcher(config: SpawnConfig) -> tuple[Launcher, RunnerTemplate]:
    namespace = runner_namespace(config)
    if config.launcher == "local":
        from services.spawner.launchers.local import DEFAULT_COMMAND, LocalLauncher

        template = load_template_file(config.runner_template or DEFAULT_TEMPLATE_PATH, namespace)
        command = list(config.runner_command or DEFAULT_COMMAND)
        launcher = LocalLauncher(command=command, max_running=config.local_max_running, runs_dir=config.local_runs_dir)
        return launcher, template

    from kubernetes.client import CoreV1Api

    from services.spawner.launchers.kube import KubernetesLauncher, api_client_from_environment

    client = config.kube_api_client or api_client_from_environment()
    if config.runner_template is not None:
        template = load_template_file(config.runner_template, namespace)
    else:
        name = config.template_name or os.environ.get("RUNNER_TEMPLATE_NAME") or DEFAULT_TEMPLATE_NAME
        template = fetch_template(CoreV1Api(client), name, namespace)
    start_timeout = timedelta(seconds=config.start_timeout_seconds)
    return KubernetesLauncher(client, namespace, start_timeout=start_timeout), template


def readiness_check(queue: Queue, database_url: str) -> Any:
    def check() -> str | None:
        try:
            queue.attributes()
        except Exception as error:
            return f"SQS unreachable: {type(error).__name__}"
        try:
            with session_factory(database_url)() as session:
                session.execute(text("SELECT 1"))
        except Exception as error:
            return f"Postgres unreachable: {type(error).__name__}"
        return None

    return check


@dataclass
class SpawnerParts:
    spawner: Spawner
    launcher: Launcher
    metrics: SpawnerMetrics
    heartbeat: Heartbeat
    health: HealthServer | None

    def close(self) -> None:
        if self.health is not None:
            self.health.stop()
        self.launcher.close()


def build_spawner(config: SpawnConfig, settings: Settings) -> SpawnerParts:
    config.check()
    database_url = settings.require_database_url()
    client = sqs_client(settings.aws_region, settings.aws_endpoint_url)
    queue = Queue(client, settings.require_queue_url())
    dlq = Queue(client, settings.require_dlq_url())
    visibility, max_receives = queue_settings(queue)
    launcher, template = make_launcher(config)
    metrics = SpawnerMetrics()
    sessions = session_factory(database_url)
    handler = MessageHandler(sessions, launcher, template, metrics, max_receives, config.checkpoint)
    reconciler = Reconciler(
        sessions,
        launcher,
        start_timeout=timedelta(seconds=config.start_timeout_seconds),
        on_reconciled=lambda status: metrics.reconciled.labels(status=status).inc(),
    )
    # Alive while one iteration (a long poll plus a little) completes; generous against GC
    # pauses and slow API calls, strict enough to catch a wedged loop.
    heartbeat = Heartbeat(max_age_seconds=max(60.0, 3.0 * config.wait_seconds))
    options = SpawnerOptions(
        concurrency=config.concurrency,
        wait_seconds=config.wait_seconds,
        drain=config.drain,
        grace_seconds=config.grace_seconds,
        reconcile_seconds=config.reconcile_seconds,
        retry_backoff_seconds=config.retry_backoff_seconds,
        visibility_timeout=visibility,
        max_receive_count=max_receives,
    )
    run_control = RunControl(database_url, sessions, handler, launcher, sweep_seconds=config.reconcile_seconds)
    spawner = Spawner(queue, dlq, handler, launcher, reconciler, sessions, metrics, heartbeat, options, run_control)
    health = None
    if config.health_port is not None:
        health = HealthServer(
            heartbeat, readiness_check(queue, database_url), metrics, config.health_host, config.health_port
        )
        health.start()
    return SpawnerParts(spawner, launcher, metrics, heartbeat, health)


@contextmanager
def stop_on_signals(spawner: Spawner) -> Iterator[None]:
    """First SIGTERM/SIGINT: stop gracefully. Second: exit at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if spawner.stopping:
            print("second signal: exiting now", file=sys.stderr, flush=True)
            os._exit(FORCED_EXIT_STATUS)
        spawner.request_stop()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_spawner(config: SpawnConfig, settings: Settings) -> int:
    parts = build_spawner(config, settings)
    if parts.health is not None:
        log.info("health endpoints listening", extra={"port": parts.health.port})
    try:
        with stop_on_signals(parts.spawner):
            status = parts.spawner.run()
    finally:
        parts.close()
    if parts.spawner.forced:
        # Workers still blocked in an API call would hold the interpreter open past the grace
        # period; their messages were handed back already.
        logging.shutdown()
        os._exit(status)
    return status
