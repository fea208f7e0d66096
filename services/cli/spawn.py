"""`wfctl spawn`: the job spawner (the Deployment's command).

Service modules (boto3, the Kubernetes client, prometheus) are imported inside the command, so
other commands — above all the runner's `wfctl execute` — never pay for them at start-up.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import typer


def spawn(
    launcher: str = typer.Option(
        "kubernetes", "--launcher", help="kubernetes (a Job per run) or local (a subprocess per run)"
    ),
    concurrency: int = typer.Option(8, "--concurrency", help="Messages handled at once"),
    drain: bool = typer.Option(
        False, "--drain", help="Exit once the queue is empty and every launched run has finished"
    ),
    runner_template: Path | None = typer.Option(
        None, "--runner-template", help="PodTemplate YAML file instead of the cluster's RUNNER_TEMPLATE_NAME"
    ),
    namespace: str | None = typer.Option(
        None, "--namespace", help="Namespace for runner Jobs (default: RUNNER_NAMESPACE)"
    ),
    health_port: int = typer.Option(8080, "--health-port", help="Port of /healthz, /readyz and /metrics; -1 disables"),
    health_host: str = typer.Option("0.0.0.0", "--health-host", help="Address the health server binds"),
    wait_seconds: int = typer.Option(20, "--wait-seconds", help="SQS long-poll wait (0-20)"),
    reconcile_seconds: float = typer.Option(30.0, "--reconcile-seconds", help="Seconds between reconcile passes"),
    start_timeout: float = typer.Option(
        600.0, "--start-timeout", help="Seconds a run may take to start before it is failed"
    ),
    grace_seconds: float = typer.Option(
        25.0, "--grace-seconds", help="After SIGTERM, seconds to finish messages in hand"
    ),
    retry_backoff: int = typer.Option(
        5, "--retry-backoff", help="Base seconds before a failed Job creation is retried"
    ),
    runner_command: str | None = typer.Option(None, "--runner-command", help="Local launcher: the runner command line"),
    max_local_runs: int = typer.Option(4, "--max-local-runs", help="Local launcher: runs at once"),
    runs_dir: Path | None = typer.Option(
        None, "--runs-dir", help="Local launcher: folder of pid files, so a restarted spawner finds its runs"
    ),
) -> int:
    """Consume run requests from the queue and start one runner Job per execution."""
    from services.core.logs import configure_logging
    from services.core.settings import Settings
    from services.spawner.service import SpawnConfig, run_spawner

    config = SpawnConfig(
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
    configure_logging("spawner")
    return run_spawner(config, Settings.from_env())
