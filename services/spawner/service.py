"""Assembles the spawner from its configuration: queues, database, launcher, template, health.

`wfctl spawn` is a thin shell over `run_spawner`; tests build the same pieces with `build_spawner`
and drive them in a thread.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from services.contract import SPAWNER_APPLICATION_NAME
from services.core.db.session import session_factory
from services.core.queue import Queue, sqs_client
from services.core.settings import Settings, SpawnerSettings
from services.core.signals import stop_on_signals
from services.notify.sender import sender_from_settings
from services.spawner.consume import Spawner, SpawnerOptions, queue_settings
from services.spawner.health import HealthServer, Heartbeat
from services.spawner.launchers.base import Launcher
from services.spawner.message_handler import Checkpoint, MessageHandler
from services.spawner.metrics import SpawnerMetrics
from services.spawner.reconciler import Reconciler
from services.spawner.run_control import RunControl
from services.spawner.runner_template import (
    DEFAULT_TEMPLATE_PATH,
    RunnerTemplate,
    fetch_template,
    load_template_file,
)

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
FORCED_EXIT_STATUS = 143  # 128 + SIGTERM, as if the default handler had run


def runner_namespace(config: SpawnerSettings) -> str:
    """Where runner Jobs go: the configured namespace, else the spawner's own, else `default`."""
    if config.namespace:
        return config.namespace
    if SERVICE_ACCOUNT_NAMESPACE.exists():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    return "default"


def make_launcher(config: SpawnerSettings, kube_api_client: Any = None) -> tuple[Launcher, RunnerTemplate]:
    namespace = runner_namespace(config)
    if config.launcher == "local":
        from services.spawner.launchers.local import DEFAULT_COMMAND, LocalLauncher

        template = load_template_file(config.runner_template or DEFAULT_TEMPLATE_PATH, namespace)
        command = list(config.runner_command or DEFAULT_COMMAND)
        launcher = LocalLauncher(command=command, max_running=config.local_max_running, runs_dir=config.local_runs_dir)
        return launcher, template

    from kubernetes.client import CoreV1Api

    from services.spawner.launchers.kube import KubernetesLauncher, api_client_from_environment

    client = kube_api_client or api_client_from_environment()
    if config.runner_template is not None:
        template = load_template_file(config.runner_template, namespace)
    else:
        template = fetch_template(CoreV1Api(client), config.template_name, namespace)
    start_timeout = timedelta(seconds=config.start_timeout_seconds)
    return KubernetesLauncher(client, namespace, start_timeout=start_timeout), template


def spawner_sessions(database_url: str) -> sessionmaker[Session]:
    """The spawner's pool. No ping before each use: the message handler runs a unit of work
    again on a fresh connection when its pooled one died (MessageHandler._in_session), and the
    loops around it (reconciler, run control, notifications) try again on their next pass."""
    return session_factory(database_url, SPAWNER_APPLICATION_NAME, pre_ping=False)


def database_check(database_url: str) -> Callable[[], str | None]:
    """A round trip through the spawner's own connection pool: a pool whose connections are all
    wedged fails it as surely as an unreachable server."""

    def check() -> str | None:
        try:
            with spawner_sessions(database_url)() as session:
                session.execute(text("SELECT 1"))
        except Exception as error:
            return f"Postgres unreachable: {type(error).__name__}"
        return None

    return check


def readiness_check(queue: Queue, database_url: str) -> Callable[[], str | None]:
    database = database_check(database_url)

    def check() -> str | None:
        try:
            queue.attributes()
        except Exception as error:
            return f"SQS unreachable: {type(error).__name__}"
        return database()

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


def build_spawner(
    config: SpawnerSettings,
    settings: Settings,
    *,
    kube_api_client: Any = None,
    checkpoint: Checkpoint | None = None,
) -> SpawnerParts:
    """The spawner's parts, wired. Tests inject a client for the Kubernetes emulator and a
    checkpoint hook that can stop the handler between its steps."""
    config.check()
    database_url = settings.require_database_url()
    client = sqs_client(settings.aws_region, settings.aws_endpoint_url)
    queue = Queue(client, settings.require_queue_url())
    dlq = Queue(client, settings.require_dlq_url())
    visibility, max_receives = queue_settings(queue)
    launcher, template = make_launcher(config, kube_api_client)
    metrics = SpawnerMetrics()
    sessions = spawner_sessions(database_url)
    handler = MessageHandler(sessions, launcher, template, metrics, max_receives, checkpoint)
    reconciler = Reconciler(
        sessions,
        launcher,
        start_timeout=timedelta(seconds=config.start_timeout_seconds),
        on_reconciled=lambda status: metrics.reconciled.labels(status=status).inc(),
        relaunch=handler.relaunch,
    )
    # Alive while one iteration (a long poll plus a little) completes; generous against GC
    # pauses and slow API calls, strict enough to catch a wedged loop.
    heartbeat = Heartbeat(max_age_seconds=max(60.0, 3.0 * config.wait_seconds))
    options = SpawnerOptions.from_settings(config, visibility, max_receives)
    sender = sender_from_settings(sessions, settings)
    run_control = RunControl(database_url, sessions, handler, launcher, sweep_seconds=config.reconcile_seconds)
    spawner = Spawner(
        queue, dlq, handler, launcher, reconciler, sessions, metrics, heartbeat, options, sender, run_control
    )
    health = None
    if config.health_port is not None:
        health = HealthServer(
            heartbeat,
            readiness_check(queue, database_url),
            metrics,
            config.health_host,
            config.health_port,
            liveness=database_check(database_url),
        )
        health.start()
    return SpawnerParts(spawner, launcher, metrics, heartbeat, health)


def on_stop_signal(spawner: Spawner) -> Callable[[str], None]:
    """First SIGTERM/SIGINT: stop gracefully. Second: exit at once."""

    def handle(signal_name: str) -> None:
        if spawner.stopping:
            print(f"second {signal_name}: exiting now", file=sys.stderr, flush=True)
            os._exit(FORCED_EXIT_STATUS)
        spawner.request_stop()

    return handle


def run_spawner(config: SpawnerSettings, settings: Settings) -> int:
    parts = build_spawner(config, settings)
    if parts.health is not None:
        log.info("health endpoints listening", extra={"port": parts.health.port})
    try:
        with stop_on_signals(on_stop_signal(parts.spawner)):
            status = parts.spawner.run()
    finally:
        parts.close()
    if parts.spawner.forced:
        # Workers still blocked in an API call would hold the interpreter open past the grace
        # period; their messages were handed back already.
        logging.shutdown()
        os._exit(status)
    return status
