"""Soak: about 1,000 runs through `wfctl local up`'s real processes, schedules and manual runs mixed.

`wfctl local up` runs the dispatcher on its one-minute tick and the spawner with the local
launcher (one `wfctl execute` process per run), on a database of BENCH_DATABASE_URL's (or
TEST_DATABASE_URL's) server and the embedded SQS endpoint. Meanwhile this script creates
`--schedules` schedules firing every minute and enqueues `--manual` manual runs spread over the
same minutes, then pauses the schedules and waits for every run to end.

It reports, against an independent count (the fire times of every schedule between its creation
and its pause, and every manual run it enqueued): runs lost (no execution), duplicated (a second
record for one fire time, or a step recorded twice), not finished, not succeeded; p50/p95 from
fire time (or enqueue time) to `running`; and runs per minute.

    python bench/bench_local_soak.py [--schedules 100] [--minutes 3] [--manual 700] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench.common import check_target, fresh_database  # noqa: E402
from services.core.settings import libpq_url  # noqa: E402

WORKFLOW = """
name: soak
steps:
  - {id: hello, type: log, with: {message: "soak {{ input.n | default('scheduled') }}"}}
  - {id: echo, type: transform, with: {expression: "steps.hello.output"}}
"""
ENV_KEYS = ("DATABASE_URL", "QUEUE_URL", "DLQ_URL", "AWS_ENDPOINT_URL")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def start_platform(state: Path, database_url: str, concurrency: int) -> tuple[subprocess.Popen[bytes], Path]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env.update({"DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)})
    log = state.parent / "local-up.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "local", "up", "--state-dir", str(state), "--no-view",
         "--sqs-port", "0", "--demo-port", "0", "--concurrency", str(concurrency)],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if "spawner: pid" in log.read_text(errors="replace"):
            return process, log
        if process.poll() is not None:
            break
        time.sleep(0.5)
    raise SystemExit(f"wfctl local up did not start:\n{log.read_text(errors='replace')[-3000:]}")


def wfctl(*args: str) -> None:
    """Run one wfctl command in this process; its output is shown only when it fails (the soak
    creates and pauses every schedule one by one, which would bury the figures)."""
    from services.cli.main import main

    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = main(list(args))
    if code != 0:
        raise SystemExit(f"wfctl {' '.join(args)} exited {code}:\n{output.getvalue()}")


def next_minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def run(schedules: int, minutes: int, manual: int, concurrency: int) -> dict[str, float | int]:
    from services.core.db.session import session_scope
    from services.core.queue import Queue, sqs_client
    from services.core.settings import Settings
    from services.dispatcher.triggers import trigger_manual_run

    with fresh_database() as database_url, tempfile.TemporaryDirectory(prefix="wfr-soak-") as tmp:
        state = Path(tmp) / "state"
        process, log = start_platform(state, database_url, concurrency)
        try:
            os.environ.update(json.loads((state / "env.json").read_text()))
            workflow_file = Path(tmp) / "soak.yaml"
            workflow_file.write_text(WORKFLOW)
            wfctl("workflows", "apply", "-f", str(workflow_file))
            # Create the schedules just after a minute boundary's tick, so that every fire time
            # from the next boundary on is due exactly once.
            while datetime.now(UTC).second not in range(5, 40):
                time.sleep(0.5)
            created = datetime.now(UTC)
            for i in range(schedules):
                wfctl("schedules", "create", f"soak-{i}", "--workflow", "soak", "--cron", "* * * * *")
            first_fire = next_minute(created)
            stop_at = first_fire + timedelta(minutes=minutes - 1, seconds=30)
            settings = Settings.from_env()
            queue = Queue(sqs_client(settings.aws_region, settings.aws_endpoint_url), settings.require_queue_url())
            enqueued: dict[str, datetime] = {}
            interval = (stop_at - datetime.now(UTC)).total_seconds() / max(1, manual)
            with session_scope(database_url) as session:
                for n in range(manual):
                    message = trigger_manual_run(session, queue, "soak", {"n": n})
                    enqueued[message.dedup_key] = datetime.now(UTC)
                    time.sleep(max(0.0, interval - 0.01))
            while datetime.now(UTC) < stop_at:
                time.sleep(0.5)
            for i in range(schedules):
                wfctl("schedules", "pause", f"soak-{i}")
            paused = datetime.now(UTC)
            candidates = (first_fire + timedelta(minutes=k) for k in range(minutes))
            fire_times = [t for t in candidates if t <= paused]
            expected = schedules * len(fire_times) + manual
            # Wait (bounded) until every expected run has an execution that has ended.
            with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:
                    done = conn.execute(
                        "SELECT count(*) FROM executions WHERE status IN "
                        "('succeeded','failed','timed_out','cancelled','skipped')"
                    ).fetchone()[0]
                    if done >= expected:
                        break
                    time.sleep(2)
                rows = conn.execute(
                    "SELECT e.dedup_key, e.trigger, e.scheduled_for, e.started_at, e.finished_at, e.created_at, "
                    "e.status, s.name FROM executions e LEFT JOIN schedules s ON s.id = e.schedule_id"
                ).fetchall()
                steps_twice = conn.execute(
                    "SELECT count(*) FROM (SELECT execution_id, step_id FROM step_runs "
                    "GROUP BY 1, 2 HAVING count(*) > 1) t"
                ).fetchone()[0]
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()

    scheduled_seen: dict[tuple[str, datetime], int] = {}
    latencies: list[float] = []
    for dedup_key, trigger, scheduled_for, started_at, _finished, _created, _status, name in rows:
        if trigger == "schedule":
            scheduled_seen[(name, scheduled_for)] = scheduled_seen.get((name, scheduled_for), 0) + 1
            if started_at:
                latencies.append((started_at - scheduled_for).total_seconds())
        elif dedup_key in enqueued and started_at:
            latencies.append((started_at - enqueued[dedup_key]).total_seconds())
    wanted = {(f"soak-{i}", t) for i in range(schedules) for t in fire_times}
    manual_seen = {row[0] for row in rows if row[1] == "manual"}
    lost = len(wanted - set(scheduled_seen)) + len(set(enqueued) - manual_seen)
    duplicated = sum(count - 1 for count in scheduled_seen.values()) + steps_twice
    terminal = [r for r in rows if r[6] in ("succeeded", "failed", "timed_out", "cancelled", "skipped")]
    finished = [r[4] for r in rows if r[4] is not None]
    started = [r[5] for r in rows if r[5] is not None]
    span_minutes = (max(finished) - min(started)).total_seconds() / 60 if finished and started else float("nan")
    return {
        "expected": expected,
        "executions": len(rows),
        "lost": lost,
        "duplicated": duplicated,
        "not_finished": len(rows) - len(terminal),
        "not_succeeded": sum(1 for r in rows if r[6] != "succeeded"),
        "p50_to_running_s": round(percentile(latencies, 0.50), 2),
        "p95_to_running_s": round(percentile(latencies, 0.95), 2),
        "runs_per_minute": round(len(terminal) / span_minutes, 1) if span_minutes == span_minutes else 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=100)
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--manual", type=int, default=700)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    result = run(args.schedules, args.minutes, args.manual, args.concurrency)
    print("local soak: " + ", ".join(f"{k} {v}" for k, v in result.items()))
    healthy = [check_target(f"soak, runs {what}", result[key], "runs", 0)
               for what, key in (("lost", "lost"), ("duplicated", "duplicated"), ("not finished", "not_finished"))]
    return 0 if all(healthy) else 1


if __name__ == "__main__":
    sys.exit(main())
