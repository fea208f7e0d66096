"""A seeded fault-injection run over the real processes (issue 15): the chaos suite's engine.

What runs: the dispatcher's ticks in this process on an injected (virtual) clock, the spawner
as a subprocess with the local launcher (`wfctl spawn --launcher local`), real runner
processes, Postgres, and the SQS endpoint behind a TCP proxy this harness can pause. Steps call
a counting HTTP server on 127.0.0.1 with their execution id in the path.

Faults, drawn from `random.Random(seed)`: SIGKILL or SIGTERM of the spawner (restarted at
once), SIGKILL of a runner process, `pg_terminate_backend` of the dispatcher's or the spawner's
connections and of every runner's (found by application_name), and the SQS endpoint paused for a few seconds.

The verdict compares the database with an independent enumerator (tests.cron_reference):
every due fire time has exactly one first-attempt execution (none lost, none duplicated), every
execution ends terminal, none made its http call twice, and the only failed executions are the
ones whose runner the harness itself killed (each then retried by the workflow's policy to a
success). Anything else failed a run for a fault the platform could have retried.

The virtual clock starts just before a DST transition in Europe/Berlin (spring forward for even
seeds, fall back for odd ones) and advances a minute at a time while few runs are in flight;
retries are due at once on it (their `next_retry_at` is real time, the virtual clock is ahead).
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import psycopg
from sqlalchemy import func
from sqlalchemy import select as sql_select

from services.contract import DISPATCHER_APPLICATION_NAME, RUNNER_APPLICATION_NAME, SPAWNER_APPLICATION_NAME
from services.core.db.models import ACTIVE_STATUSES, Execution, ExecutionStatus
from services.core.db.session import session_factory
from services.core.queue import Queue
from services.core.settings import libpq_url
from services.core.workflows import apply_workflow, parse_workflow
from services.dispatcher.schedules import ScheduleSpec, create_schedule
from services.dispatcher.tick import tick
from services.local.embedded import create_queues
from tests import cron_reference as enumerator

WORKTREE = Path(__file__).resolve().parents[2]
ZONE = "Europe/Berlin"
#: Schedules: (name, zone, crons). The Berlin one has a fixed-time expression whose wall time
#: the spring transition skips (it fires at 03:00) and the fall one repeats (it fires once).
SCHEDULES = (
    ("chaos-berlin", ZONE, ("3-59/7 * * * *", "30 2 * * *")),
    ("chaos-utc", "UTC", ("*/4 * * * *",)),
)
SPRING_START = datetime(2027, 3, 28, 0, 40, tzinfo=UTC)  # 01:40 CET; 02:00 → 03:00 at 01:00Z
FALL_START = datetime(2027, 10, 31, 0, 20, tzinfo=UTC)  # 02:20 CEST; 03:00 → 02:00 at 01:00Z

WORKFLOW = """
name: chaos
timeout_seconds: 60
retry: {{max_attempts: 8, backoff_seconds: 1}}
steps:
  - {{id: call, type: http, with: {{url: "{url}/count/{{{{ execution.id }}}}"}}}}
  - {{id: work, type: sleep, with: {{seconds: 0.3}}}}
"""

FAULT_WEIGHTS = {
    "kill_spawner": 3,
    "term_spawner": 1,
    "kill_runner": 3,
    "pg_terminate_spawner": 2,
    "pg_terminate_dispatcher": 1,
    "pg_terminate_runner": 2,
    "pause_sqs": 2,
}


# -- a pausable TCP proxy in front of the SQS endpoint ---------------------------------------


class PausableProxy:
    """Forwards 127.0.0.1:<free port> to the SQS endpoint; `pause` holds every byte (new
    connections and data in flight) until `resume`, as a network partition would."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.flowing = threading.Event()
        self.flowing.set()
        self.stopped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, name="sqs-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pause(self) -> None:
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        self.stopped.set()
        self.flowing.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _pipe(self, client: socket.socket) -> None:
        try:
            self.flowing.wait()
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            client.close()
            return
        sockets = [client, upstream]
        try:
            for _ in range(10_000_000):
                if self.stopped.is_set():
                    break
                readable, _, _ = select.select(sockets, [], [], 0.5)
                if not readable:
                    continue
                self.flowing.wait()
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    (upstream if source is client else client).sendall(data)
        except OSError:
            pass
        finally:
            client.close()
            upstream.close()


# -- the report ------------------------------------------------------------------------------


@dataclass
class ChaosReport:
    seed: int
    faults: Counter[str] = field(default_factory=Counter)
    fire_times: int = 0
    executions: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    non_terminal: list[str] = field(default_factory=list)
    steps_twice: list[str] = field(default_factory=list)
    failed_by_retryable_fault: list[str] = field(default_factory=list)
    failed_by_runner_kill: int = 0
    fire_times_not_succeeded: list[str] = field(default_factory=list)
    virtual_span: str = ""
    seconds: float = 0.0

    @property
    def faults_injected(self) -> int:
        return sum(self.faults.values())

    def problems(self) -> list[str]:
        found = []
        for name in ("lost", "duplicated", "unexpected", "non_terminal", "steps_twice",
                     "failed_by_retryable_fault", "fire_times_not_succeeded"):
            values = getattr(self, name)
            if values:
                found.append(f"{name}: {len(values)} e.g. {values[:5]}")
        return found

    def line(self) -> str:
        return (
            f"chaos seed={self.seed}: {self.faults_injected} faults ({dict(sorted(self.faults.items()))}), "
            f"{self.fire_times} fire times ({self.virtual_span}), {self.executions} executions; "
            f"lost {len(self.lost)}, duplicated {len(self.duplicated) + len(self.unexpected)}, "
            f"non-terminal {len(self.non_terminal)}, steps twice {len(self.steps_twice)}, "
            f"failed by a retryable fault {len(self.failed_by_retryable_fault)}, "
            f"fire times not succeeded {len(self.fire_times_not_succeeded)}; "
            f"attempts failed by an injected runner kill (then retried) {self.failed_by_runner_kill}; "
            f"{self.seconds:.0f}s"
        )


# -- the run ---------------------------------------------------------------------------------


class ChaosRun:
    def __init__(
        self,
        database_url: str,
        sqs_endpoint: str,
        server: Any,
        workdir: Path,
        seed: int,
        faults: int,
        *,
        fault_interval: tuple[float, float] = (0.4, 1.6),
        backlog: int = 3,
        settle_seconds: float = 120.0,
        max_seconds: float | None = None,
    ) -> None:
        self.database_url = database_url
        self.server = server
        self.workdir = workdir
        self.seed = seed
        self.fault_target = faults
        self.fault_interval = fault_interval
        self.backlog = backlog
        self.settle_seconds = settle_seconds
        self.max_seconds = max_seconds
        self.random = random.Random(seed)
        self.report = ChaosReport(seed=seed)
        self.sessions = session_factory(database_url, DISPATCHER_APPLICATION_NAME)
        self.checks = session_factory(database_url)
        client = boto3.client("sqs", endpoint_url=sqs_endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"))
        self.queue_url, self.dlq_url = create_queues(client, f"chaos-{uuid.uuid4().hex[:10]}", max_receive_count=5)
        client.set_queue_attributes(QueueUrl=self.queue_url, Attributes={"VisibilityTimeout": "5"})
        self.sqs = client
        host, port = sqs_endpoint.removeprefix("http://").split(":")
        self.proxy = PausableProxy(host, int(port))
        self.queue = Queue(
            boto3.client("sqs", endpoint_url=sqs_endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1")),
            self.queue_url,
        )
        self.runs_dir = workdir / "runs"
        self.spawner: subprocess.Popen[bytes] | None = None
        self.spawner_starts = 0
        self.killed_runs: set[uuid.UUID] = set()
        self.start = SPRING_START if seed % 2 == 0 else FALL_START
        self.now = self.start
        self.schedule_ids: dict[str, uuid.UUID] = {}

    # -- setup and processes ----------------------------------------------------------------

    def setup(self) -> None:
        with self.checks() as session:
            workflow, _ = apply_workflow(session, parse_workflow(WORKFLOW.format(url=self.server.url)))
            for name, zone, crons in SCHEDULES:
                spec = ScheduleSpec(
                    name=name, workflow=workflow.name, cron=list(crons), timezone=zone, catchup="all",
                )
                self.schedule_ids[name] = create_schedule(session, spec, now=self.start).id
            session.commit()

    def start_spawner(self) -> None:
        self.spawner_starts += 1
        env = {
            **os.environ,
            "PYTHONPATH": str(WORKTREE),
            "DATABASE_URL": self.database_url,
            "QUEUE_URL": self.queue_url,
            "DLQ_URL": self.dlq_url,
            "AWS_ENDPOINT_URL": self.proxy.url,
            "RUNNER_DENY_PRIVATE_NETWORKS": "0",
            "LOG_FORMAT": "json",
        }
        command = [
            sys.executable, "-m", "services.cli", "spawn", "--launcher", "local", "--health-port", "-1",
            "--wait-seconds", "1", "--reconcile-seconds", "1", "--start-timeout", "120", "--grace-seconds", "5",
            "--max-local-runs", "2", "--concurrency", "4", "--runs-dir", str(self.runs_dir),
        ]
        log = (self.workdir / f"spawner-{self.spawner_starts}.log").open("wb")
        self.spawner = subprocess.Popen(command, cwd=WORKTREE, env=env, stdout=log, stderr=subprocess.STDOUT)

    def stop_spawner(self, sig: int = signal.SIGTERM, wait: float = 30.0) -> None:
        if self.spawner is None or self.spawner.poll() is not None:
            return
        self.spawner.send_signal(sig)
        try:
            self.spawner.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.spawner.kill()
            self.spawner.wait(timeout=10)

    def live_runners(self) -> list[tuple[int, uuid.UUID]]:
        runners = []
        for pid_file in sorted(self.runs_dir.glob("*.pid")):
            try:
                pid = int(pid_file.read_text().strip())
                environ = Path(f"/proc/{pid}/environ").read_bytes()
            except (OSError, ValueError):
                continue
            for entry in environ.split(b"\0"):
                if entry.startswith(b"EXECUTION_ID="):
                    runners.append((pid, uuid.UUID(entry.split(b"=", 1)[1].decode())))
        return runners

    # -- faults -----------------------------------------------------------------------------

    def inject(self) -> str | None:
        kinds = list(FAULT_WEIGHTS)
        kind = self.random.choices(kinds, weights=[FAULT_WEIGHTS[k] for k in kinds])[0]
        if kind == "kill_spawner":
            self.stop_spawner(signal.SIGKILL)
            self.start_spawner()
        elif kind == "term_spawner":
            self.stop_spawner(signal.SIGTERM)
            self.start_spawner()
        elif kind == "kill_runner":
            runners = self.live_runners()
            if not runners:
                return None
            pid, execution_id = self.random.choice(runners)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return None
            self.killed_runs.add(execution_id)
        elif kind.startswith("pg_terminate"):
            names = {
                "pg_terminate_spawner": SPAWNER_APPLICATION_NAME,
                "pg_terminate_dispatcher": DISPATCHER_APPLICATION_NAME,
                "pg_terminate_runner": f"{RUNNER_APPLICATION_NAME} %",
            }
            with psycopg.connect(libpq_url(self.database_url), autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name LIKE %s AND pid <> pg_backend_pid()",
                    (names[kind],),
                )
        elif kind == "pause_sqs":
            self.proxy.pause()
            seconds = self.random.uniform(1.0, 4.0)
            threading.Timer(seconds, self.proxy.resume).start()
        self.report.faults[kind] += 1
        return kind

    # -- the loop ---------------------------------------------------------------------------

    def active(self) -> int:
        with self.checks() as session:
            return session.scalar(
                sql_select(func.count()).where(Execution.status.in_([str(s) for s in ACTIVE_STATUSES]))
            ) or 0

    def pending_retries(self) -> int:
        with self.checks() as session:
            return session.scalar(sql_select(func.count()).where(Execution.next_retry_at.is_not(None))) or 0

    def dispatch(self) -> bool:
        try:
            tick(self.sessions, self.queue, now=self.now)
            return True
        except Exception:  # a terminated connection: the next tick at the same time retries
            return False

    def run(self) -> ChaosReport:
        started = time.monotonic()
        self.setup()
        self.start_spawner()
        next_fault = time.monotonic() + self.random.uniform(*self.fault_interval)
        try:
            while self.report.faults_injected < self.fault_target:
                if self.max_seconds is not None and time.monotonic() - started > self.max_seconds:
                    break
                if self.spawner is not None and self.spawner.poll() is not None:
                    self.start_spawner()  # it died of a fault's side effect: a supervisor restarts it
                if self.dispatch() and self.active() < self.backlog:
                    self.now += timedelta(minutes=1)
                if time.monotonic() >= next_fault:
                    self.inject()
                    next_fault = time.monotonic() + self.random.uniform(*self.fault_interval)
                time.sleep(0.2)
            end = self.now
            self.dispatch()
            settle_until = time.monotonic() + self.settle_seconds
            while time.monotonic() < settle_until:
                if self.spawner is not None and self.spawner.poll() is not None:
                    self.start_spawner()
                self.dispatch()
                if self.active() == 0 and self.pending_retries() == 0:
                    break
                time.sleep(0.5)
        finally:
            self.proxy.resume()
            self.stop_spawner(signal.SIGTERM)
            self.proxy.close()
        self.report.seconds = time.monotonic() - started
        self.check(end)
        return self.report

    # -- the verdict ------------------------------------------------------------------------

    def check(self, end: datetime) -> None:
        report = self.report
        report.virtual_span = f"{self.start.isoformat()} to {end.isoformat()}"
        with self.checks() as session:
            rows = list(session.scalars(sql_select(Execution)))
        report.executions = len(rows)
        by_id = {row.id: row for row in rows}
        for name, zone, crons in SCHEDULES:
            expected = enumerator.fire_times(crons, zone, self.start, end)
            report.fire_times += len(expected)
            schedule_id = self.schedule_ids[name]
            firsts: Counter[datetime] = Counter(
                row.scheduled_for for row in rows if row.schedule_id == schedule_id and row.attempt == 1
            )
            for fire_time in expected:
                if firsts[fire_time] == 0:
                    report.lost.append(f"{name}@{fire_time.isoformat()}")
                elif firsts[fire_time] > 1:
                    report.duplicated.append(f"{name}@{fire_time.isoformat()}")
            for fire_time in set(firsts) - set(expected):
                report.unexpected.append(f"{name}@{fire_time.isoformat()}")
            for fire_time in expected:
                chain = [r for r in rows if r.schedule_id == schedule_id and r.scheduled_for == fire_time]
                if chain and not any(r.status == ExecutionStatus.SUCCEEDED for r in chain):
                    report.fire_times_not_succeeded.append(
                        f"{name}@{fire_time.isoformat()}: {[(r.attempt, r.status, r.error) for r in chain]}"
                    )
        for row in rows:
            if row.status in ACTIVE_STATUSES:
                report.non_terminal.append(f"{row.id} {row.status}")
            calls = self.server.count(f"/count/{row.id}")
            if calls > 1:
                report.steps_twice.append(f"{row.id} called {calls} times")
            if row.status in (ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT):
                if row.id in self.killed_runs:
                    report.failed_by_runner_kill += 1
                else:
                    report.failed_by_retryable_fault.append(f"{row.id} attempt {row.attempt}: {row.error}")
        del by_id

    def logs_tail(self, characters: int = 4000) -> str:
        logs = sorted(self.workdir.glob("spawner-*.log"))
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-characters:]}" for p in logs[-2:])


def summary_json(report: ChaosReport) -> str:
    return json.dumps(
        {
            "seed": report.seed,
            "faults_injected": report.faults_injected,
            "faults": dict(report.faults),
            "fire_times": report.fire_times,
            "executions": report.executions,
            "lost": len(report.lost),
            "duplicated": len(report.duplicated) + len(report.unexpected),
            "non_terminal": len(report.non_terminal),
            "steps_twice": len(report.steps_twice),
            "failed_by_retryable_fault": len(report.failed_by_retryable_fault),
            "fire_times_not_succeeded": len(report.fire_times_not_succeeded),
            "attempts_failed_by_runner_kill": report.failed_by_runner_kill,
            "seconds": round(report.seconds),
        }
    )
