"""`wfctl local`: the whole platform on this machine (no Kubernetes, no Docker, no AWS)."""

from __future__ import annotations

import json
import shlex
import signal
import sys
import time
from pathlib import Path

import typer

from services.core.errors import UserError

app = typer.Typer(help="Run the platform on this machine.", no_args_is_help=True)

DEFAULT_EXAMPLES = Path("examples")


@app.command("up")
def up(
    state_dir: Path = typer.Option(Path(".local"), "--state-dir", help="Folder for the local state"),
    reset: bool = typer.Option(False, "--reset", help="Delete the local state and start clean"),
    examples: bool = typer.Option(False, "--examples", help="Apply examples/ and trigger one run"),
    examples_dir: Path = typer.Option(DEFAULT_EXAMPLES, "--examples-dir", help="Where the examples are"),
    tick_seconds: float = typer.Option(60.0, "--tick-seconds", help="Dispatcher period (tests use a few seconds)"),
    sqs_port: int = typer.Option(9324, "--sqs-port", help="Port of the embedded SQS endpoint"),
    demo_port: int = typer.Option(8099, "--demo-port", help="Port of the demo API the examples call"),
    concurrency: int = typer.Option(4, "--concurrency", help="Runs executed at once"),
    view: bool = typer.Option(True, "--view/--no-view", help="Live view (default on a terminal)"),
    console_port: int = typer.Option(8080, "--console-port", help="Port of the web console on 127.0.0.1 (0: any free)"),
    console: bool = typer.Option(True, "--console/--no-console", help="Serve the web console and API"),
) -> None:
    """Start Postgres and SQS (embedded unless DATABASE_URL / QUEUE_URL are set), the dispatcher and the spawner."""
    from rich.console import Console
    from rich.live import Live

    from services.local.supervisor import LocalOptions, LocalPlatform, now_text
    from services.local.view import StatusLines, render, take_snapshot

    if examples and not (examples_dir / "schedules.yaml").exists():
        raise UserError("examples-dir", f"{examples_dir} has no schedules.yaml")
    if tick_seconds <= 0:
        raise UserError("tick-seconds", "must be positive")
    platform = LocalPlatform(
        LocalOptions(
            state_dir=state_dir, reset=reset, tick_seconds=tick_seconds, sqs_port=sqs_port, demo_port=demo_port,
            examples_dir=examples_dir if examples else None, concurrency=concurrency,
            view=view and sys.stdout.isatty(), console_port=console_port if console else None,
        )
    )

    def say(line: str) -> None:
        print(f"{now_text()} {line}", flush=True)

    def request_stop(signum: int, _frame: object) -> None:
        platform.stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        platform.start(say)
        say(f"ready; other wfctl commands: eval \"$(wfctl local env --state-dir {shlex.quote(str(state_dir))})\"")
        last_tick = {"line": "-"}
        if platform.options.view:
            console = Console()
            with Live(console=console, refresh_per_second=1, screen=False) as live:
                refreshed = {"at": 0.0}

                def refresh() -> None:
                    if time.monotonic() - refreshed["at"] >= 2:
                        live.update(render(take_snapshot(platform.env), last_tick["line"]))
                        refreshed["at"] = time.monotonic()

                platform.run(lambda line: last_tick.update(line=f"{now_text()} {line}"), refresh)
        else:
            lines = StatusLines(emit=say)
            polled = {"at": 0.0}

            def poll() -> None:
                if time.monotonic() - polled["at"] >= 1:
                    lines.update(take_snapshot(platform.env))
                    polled["at"] = time.monotonic()

            platform.run(say, poll)
    finally:
        platform.stop(say)


@app.command("env")
def env(
    state_dir: Path = typer.Option(Path(".local"), "--state-dir", help="Folder of the local state"),
    output: str = typer.Option("shell", "--output", "-o", help="shell or json"),
) -> None:
    """Print the variables that point other wfctl commands at the local platform."""
    from services.local.state import LocalState

    state = LocalState(state_dir)
    if not state.env_file.exists():
        raise UserError("state-dir", f"no local platform state in {state_dir} (run 'wfctl local up' first)")
    values = state.read_env()
    if output == "json":
        typer.echo(json.dumps(values, indent=2))
        return
    for key, value in sorted(values.items()):
        typer.echo(f"export {key}={shlex.quote(value)}")
