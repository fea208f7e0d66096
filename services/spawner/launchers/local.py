"""Runner "Jobs" as subprocesses on this machine (docs/architecture.md), with the Job's semantics.

The same V1Job the cluster would get is the input: its runner container's plain variables become
the subprocess environment, its `activeDeadlineSeconds` is enforced (SIGTERM, then SIGKILL after
a grace period, like the kubelet), and names are idempotent like Job names. There are no Secrets
on one machine, so DATABASE_URL and INTEGRATION_ENCRYPTION_KEY are passed through from the
spawner's own environment. At most `max_running` runs at once; the rest wait their turn, as pods
wait for a node.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes.client import V1Job

from services.contract import RUNNER_CONTAINER, SECRET_ENV_NAMES
from services.spawner.jobs import execution_id_of
from services.spawner.outcomes import JobOutcome, JobState

log = logging.getLogger(__name__)

DEFAULT_COMMAND = (sys.executable, "-m", "services.cli", "execute")
#: Variables of the spawner's environment a runner process inherits (besides the secrets).
INHERITED_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "LOG_LEVEL",
)
#: Template values the spawner's own environment may override on one machine: `wfctl local up`
#: lets runs reach services on 127.0.0.1 (the cluster denies private networks) and logs as text.
LOCAL_OVERRIDES = ("RUNNER_DENY_PRIVATE_NETWORKS", "LOG_FORMAT")
FINISHED_RETENTION_SECONDS = 3600.0  # like ttlSecondsAfterFinished


@dataclass
class _Run:
    name: str
    execution_id: uuid.UUID | None
    env: dict[str, str]
    deadline_seconds: float | None
    process: subprocess.Popen[bytes] | None = None
    started: float | None = None
    terminate_sent: float | None = None
    deadline_hit: bool = False
    deleted: bool = False
    outcome: JobOutcome | None = None
    ended: float | None = None
    queued: float = field(default_factory=time.monotonic)
    #: A runner another spawner process started (found through the runs folder): watched by pid.
    adopted_pid: int | None = None


def job_environment(job: V1Job, spawner_env: Mapping[str, str]) -> dict[str, str]:
    """The runner process environment: inherited basics, the Job's plain values, the secrets."""
    env = {key: spawner_env[key] for key in INHERITED_ENV if key in spawner_env}
    spec = job.spec.template.spec if job.spec and job.spec.template else None
    containers = list(spec.containers or []) if spec else []
    runner = next((c for c in containers if c.name == RUNNER_CONTAINER), containers[0] if containers else None)
    if runner is not None:
        for var in runner.env or []:
            if var.value is not None:
                env[var.name] = var.value
    for name in (*SECRET_ENV_NAMES, *LOCAL_OVERRIDES):
        if name in spawner_env:
            env[name] = spawner_env[name]
    return env


class LocalLauncher:
    def __init__(
        self,
        command: Sequence[str] = DEFAULT_COMMAND,
        max_running: int = 4,
        grace_seconds: float = 10.0,
        environ: Mapping[str, str] | None = None,
        poll_seconds: float = 0.1,
        cwd: str | None = None,
        runs_dir: Path | None = None,
    ) -> None:
        """`runs_dir` keeps a pid file per running Job name, so a restarted spawner finds the runs
        its predecessor started instead of starting a second runner for the same execution."""
        self.command = list(command)
        self.max_running = max(1, max_running)
        self.grace_seconds = grace_seconds
        self.environ = dict(os.environ if environ is None else environ)
        self.poll_seconds = poll_seconds
        self.cwd = cwd
        self.runs_dir = runs_dir
        if runs_dir is not None:
            runs_dir.mkdir(parents=True, exist_ok=True)
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        self._adopt_live_runs()
        self._stop = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="local-launcher", daemon=True)
        self._monitor.start()

    # -- the Launcher interface -------------------------------------------------------------

    def launch(self, job: V1Job) -> bool:
        assert job.metadata is not None and job.metadata.name
        name = job.metadata.name
        with self._lock:
            if name in self._runs:
                return False
            deadline = job.spec.active_deadline_seconds if job.spec else None
            adopted = self._live_runner_pid(name)
            if adopted is not None:
                self._runs[name] = _Run(
                    name=name, execution_id=execution_id_of(name), env={}, deadline_seconds=None,
                    started=time.monotonic(), adopted_pid=adopted,
                )
                log.info("runner already running (started before a restart)", extra={"job_name": name, "pid": adopted})
                return False
            self._runs[name] = _Run(
                name=name,
                execution_id=execution_id_of(name),
                env=job_environment(job, self.environ),
                deadline_seconds=float(deadline) if deadline else None,
            )
            self._step_locked()
        return True

    def delete(self, job_name: str) -> None:
        with self._lock:
            run = self._runs.get(job_name)
            if run is None or run.deleted:
                return
            if run.outcome is not None and run.process is not None:
                del self._runs[job_name]  # a finished Job deleted is gone, and may be created again
                return
            run.deleted = True
            if run.adopted_pid is not None:
                # A runner started before a restart: no process handle, but its pid. Stopped like
                # any other; its end is noticed when the pid is gone.
                self._signal_adopted_locked(run, signal.SIGTERM)
                run.terminate_sent = time.monotonic()
            elif run.process is None:
                run.outcome = JobOutcome(run.name, run.execution_id, JobState.FAILED, "Job deleted")
                run.ended = time.monotonic()
            elif run.process.poll() is None:
                self._terminate_locked(run)

    def observe(self) -> list[JobOutcome]:
        with self._lock:
            self._step_locked()
            return [self._outcome_locked(run) for run in self._runs.values()]

    def process_ended(self, job_name: str) -> bool:
        with self._lock:
            self._step_locked()
            run = self._runs.get(job_name)
            return run is not None and run.outcome is not None

    def close(self) -> None:
        """Stop watching. Runs in progress keep going and record their own results; runs still
        waiting for a slot are not started here (they would outlive their spawner's limit):
        their executions stay `starting` and the next spawner's reconciler launches them again
        from their records (services.spawner.reconciler)."""
        with self._lock:
            waiting = [run.name for run in self._runs.values() if run.process is None and run.adopted_pid is None
                       and run.outcome is None]
        if waiting:
            log.info("runs waiting for a slot are left to the next spawner", extra={"job_names": waiting})
        self._stop.set()
        self._monitor.join(timeout=2)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no run is queued or running (tests, `--drain`); True when idle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                self._step_locked()
                if all(run.outcome is not None for run in self._runs.values()):
                    return True
            time.sleep(self.poll_seconds)
        return False

    # -- bookkeeping --------------------------------------------------------------------------

    def _adopt_live_runs(self) -> None:
        """Watch every runner a predecessor started that is still alive (its pid file in the
        runs folder), so the reconciler sees its Job and never fails a run still working. Before
        issue 15 a predecessor's runner was adopted only when its message came back."""
        if self.runs_dir is None:
            return
        for pid_file in sorted(self.runs_dir.glob("*.pid")):
            name = pid_file.name[: -len(".pid")]
            pid = self._live_runner_pid(name)
            if pid is None:
                pid_file.unlink(missing_ok=True)  # its runner ended; the record says how
                continue
            self._runs[name] = _Run(
                name=name, execution_id=execution_id_of(name), env={}, deadline_seconds=None,
                started=time.monotonic(), adopted_pid=pid,
            )
            log.info("adopted a live runner started before a restart", extra={"job_name": name, "pid": pid})

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                with self._lock:
                    self._step_locked()
            except Exception:  # the monitor must outlive any one bad run
                log.exception("local launcher monitor failed")

    def _outcome_locked(self, run: _Run) -> JobOutcome:
        if run.outcome is not None:
            return run.outcome
        started = run.process is not None or run.adopted_pid is not None
        state = JobState.RUNNING if started else JobState.PENDING
        return JobOutcome(run.name, run.execution_id, state)

    def _signal_adopted_locked(self, run: _Run, signum: signal.Signals) -> None:
        pid = self._live_runner_pid(run.name)
        if pid is not None and pid == run.adopted_pid:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def _terminate_locked(self, run: _Run) -> None:
        assert run.process is not None
        if run.terminate_sent is None:
            run.terminate_sent = time.monotonic()
            try:
                run.process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _step_locked(self) -> None:
        now = time.monotonic()
        running = 0
        for run in self._runs.values():
            if run.adopted_pid is not None and run.outcome is None:
                if self._live_runner_pid(run.name) is None:
                    # Its exit status went to the previous spawner; the reconciler reads the
                    # execution's own record and fails it only if the runner recorded nothing.
                    reason = "Job deleted" if run.deleted else "runner process ended"
                    run.outcome = JobOutcome(run.name, run.execution_id, JobState.FAILED, reason)
                    run.ended = now
                    self._forget_pid(run.name)
                else:
                    running += 1
                    if run.terminate_sent is not None and now - run.terminate_sent >= self.grace_seconds:
                        self._signal_adopted_locked(run, signal.SIGKILL)
                continue
            if run.process is None or run.outcome is not None:
                continue
            code = run.process.poll()
            if code is not None:
                self._finish_locked(run, code, now)
                continue
            running += 1
            if run.deadline_seconds is not None and run.started is not None and not run.deadline_hit:
                if now - run.started >= run.deadline_seconds:
                    run.deadline_hit = True
                    log.info("deadline exceeded, stopping runner", extra=self._extra(run))
                    self._terminate_locked(run)
            if run.terminate_sent is not None and now - run.terminate_sent >= self.grace_seconds:
                try:
                    run.process.kill()
                except ProcessLookupError:
                    pass
        for run in self._runs.values():
            if running >= self.max_running:
                break
            if run.process is None and run.outcome is None and run.adopted_pid is None:
                self._start_locked(run, now)
                running += 1
        for name in [n for n, r in self._runs.items() if r.ended and now - r.ended > FINISHED_RETENTION_SECONDS]:
            del self._runs[name]

    def _start_locked(self, run: _Run, now: float) -> None:
        try:
            run.process = subprocess.Popen(self.command, env=run.env, cwd=self.cwd, stdin=subprocess.DEVNULL)
            run.started = now
            if self.runs_dir is not None:
                (self.runs_dir / f"{run.name}.pid").write_text(str(run.process.pid))
            log.info("runner started", extra={**self._extra(run), "pid": run.process.pid})
        except OSError as error:
            run.outcome = JobOutcome(run.name, run.execution_id, JobState.FAILED, f"cannot start the runner: {error}")
            run.ended = now

    def _finish_locked(self, run: _Run, code: int, now: float) -> None:
        run.ended = now
        self._forget_pid(run.name)
        if run.deadline_hit:
            reason = f"deadline exceeded after {int(run.deadline_seconds or 0)}s"
            run.outcome = JobOutcome(run.name, run.execution_id, JobState.TIMED_OUT, reason)
        elif run.deleted:
            run.outcome = JobOutcome(run.name, run.execution_id, JobState.FAILED, "Job deleted")
        elif code == 0:
            run.outcome = JobOutcome(run.name, run.execution_id, JobState.SUCCEEDED)
        elif code < 0:
            try:
                reason = f"runner killed by signal {signal.Signals(-code).name}"
            except ValueError:  # real-time signals have no name
                reason = f"runner killed by signal {-code}"
            run.outcome = JobOutcome(run.name, run.execution_id, JobState.FAILED, reason, killed=True)
        else:
            reason = f"runner exited with code {code}"
            run.outcome = JobOutcome(run.name, run.execution_id, JobState.FAILED, reason)
        log.info("runner ended", extra={**self._extra(run), "exit_code": code})

    def _forget_pid(self, name: str) -> None:
        if self.runs_dir is not None:
            (self.runs_dir / f"{name}.pid").unlink(missing_ok=True)

    def _live_runner_pid(self, name: str) -> int | None:
        """The pid recorded for `name`, if that process is alive and is this Job's runner (the
        environment check guards against a recycled pid)."""
        if self.runs_dir is None:
            return None
        try:
            pid = int((self.runs_dir / f"{name}.pid").read_text().strip())
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            return None
        execution_id = execution_id_of(name)
        if state == "Z" or execution_id is None or f"EXECUTION_ID={execution_id}".encode() not in environ:
            return None
        return pid

    @staticmethod
    def _extra(run: _Run) -> dict[str, str]:
        return {"execution_id": str(run.execution_id), "job_name": run.name}
