"""`wfctl spawn`: the job spawner (the Deployment's command).

Service modules (boto3, the Kubernetes client, prometheus) are imported inside the command, so
other commands — above all the runner's `wfctl execute` — never pay for them at start-up. The
options' defaults are the spawner's settings (services.core.settings.SpawnerSettings).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from services.core.settings import SPAWNER_DEFAULTS as DEFAULTS


def spawn(
    launcher: str = typer.Option(
        DEFAULTS.launcher, "--launcher", help="kubernetes (a Job per run) or local (a subprocess per run)"
    ),
    concurrency: int = typer.Option(DEFAULTS.concurrency, "--concurrency", help="Messages handled at once"),
    drain: bool = typer.Option(
        DEFAULTS.drain, "--drain", help="Exit once the queue is empty and every launched run has finished"
    ),
    runner_template: Path | None = typer.Option(
        None, "--runner-template", help="PodTemplate YAML file instead of the cluster's RUNNER_TEMPLATE_NAME"
    ),
    namespace: str | None = typer.Option(
        None, "--namespace", help="Namespace for runner Jobs (default: RUNNER_NAMESPACE)"
    ),
    health_port: int = typer.Option(
        DEFAULTS.health_port, "--health-port", help="Port of /healthz, /readyz and /metrics; -1 disables"
    ),
    health_host: str = typer.Option(DEFAULTS.health_host, "--health-host", help="Address the health server binds"),
    wait_seconds: int = typer.Option(DEFAULTS.wait_seconds, "--wait-seconds", help="SQS long-poll wait (0-20)"),
    reconcile_seconds: float = typer.Option(
        DEFAULTS.reconcile_seconds, "--reconcile-seconds", help="Seconds between reconcile passes"
    ),
    start_timeout: float = typer.Option(
        DEFAULTS.start_timeout_seconds, "--start-timeout", help="Seconds a run may take to start before it is failed"
    ),
    grace_seconds: float = typer.Option(
        DEFAULTS.grace_seconds, "--grace-seconds", help="After SIGTERM, seconds to finish messages in hand"
    ),
    retry_backoff: int = typer.Option(
        DEFAULTS.retry_backoff_seconds, "--retry-backoff", help="Base seconds before a failed Job creation is retried"
    ),
    runner_command: str | None = typer.Option(None, "--runner-command", help="Local launcher: the runner command line"),
    max_local_runs: int = typer.Option(
        DEFAULTS.local_max_running, "--max-local-runs", help="Local launcher: runs at once"
    ),
    runs_dir: Path | None = typer.Option(
        None, "--runs-dir", help="Local launcher: folder of pid files, so a restarted spawner finds its runs"
    ),
) -> int:
    """Consume run requests from the queue and start one runner Job per execution."""
    from services.core.logs import configure_logging
    from services.core.settings import Settings, SpawnerSettings
    from services.spawner.service import run_spawner

    config = SpawnerSettings.from_env(
        launcher=launcher,
        concurrency=concurrency,
        drain=drain,
        runner_template=runner_template,
        namespace=namespace,
        health_host=health_host,
        health_port=None if health_port < 0 else health_port,
        wait_seconds=wait_seconds,
        reconcile_seconds=reconcile_seconds,
        start_timeout_seconds=start_timeout,
        grace_seconds=grace_seconds,
        retry_backoff_seconds=retry_backoff,
        runner_command=shlex.split(runner_command) if runner_command else None,
        local_max_running=max_local_runs,
        local_runs_dir=runs_dir,
    )
    config.check()  # bad options: one line, exit 2, before anything starts
    settings = Settings.from_env()
    configure_logging("spawner", settings)
    return run_spawner(config, settings)
