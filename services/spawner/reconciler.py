"""Ends executions the runner could not end itself ("every execution ends": docs/architecture.md).

The runner writes its own final status; it cannot when its pod is killed at the deadline or for
memory, when its image never pulls, or when its Job never got created. Each pass compares the
runner Jobs that exist with the executions that are still active and records what happened, with
`finish_execution` — a conditional update, so a status the runner wrote always wins and retries
are scheduled as for any other failure.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.core.db.models import ACTIVE_STATUSES, Execution, ExecutionStatus
from services.core.executions import finish_execution
from services.notify.events import execution_finished
from services.spawner.jobs import job_name
from services.spawner.launchers.base import Launcher, LaunchError
from services.spawner.outcomes import JobOutcome, error_for, execution_status_for

log = logging.getLogger(__name__)

DEFAULT_START_TIMEOUT = timedelta(minutes=10)
#: A `starting` run must have been without its Job this long before it is launched again, so a
#: Job being created right now is not launched twice (harmless, but noisy).
DEFAULT_RELAUNCH_GRACE = timedelta(seconds=5)


class Reconciler:
    def __init__(
        self,
        session_maker: Callable[[], Session],
        launcher: Launcher,
        start_timeout: timedelta = DEFAULT_START_TIMEOUT,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_reconciled: Callable[[str], None] | None = None,
        relaunch: Callable[[uuid.UUID], bool] | None = None,
        relaunch_grace: timedelta = DEFAULT_RELAUNCH_GRACE,
    ) -> None:
        """`relaunch` launches a `starting` run again from its record (MessageHandler.relaunch);
        `clock` is injectable so tests and the chaos suite control the start timeout."""
        self.session_maker = session_maker
        self.launcher = launcher
        self.start_timeout = start_timeout
        self.clock = clock
        self.on_reconciled = on_reconciled
        self.relaunch = relaunch
        self.relaunch_grace = relaunch_grace

    def run_once(self) -> Counter[str]:
        """One pass; returns how many executions were ended, by status."""
        outcomes = self.launcher.observe()
        ended: Counter[str] = Counter()
        for outcome in outcomes:
            if outcome.finished and outcome.execution_id is not None:
                status = self._apply(outcome)
                if status is not None:
                    ended[status] += 1
        ended.update(self._fail_jobless(existing={outcome.job_name for outcome in outcomes}))
        return ended

    def _record(self, execution_id: object, status: ExecutionStatus, error: str) -> bool:
        with self.session_maker() as session:
            # A run someone asked to cancel ended because its Job was deleted: that is a cancel.
            requested_by = session.scalar(select(Execution.cancel_requested_by).where(Execution.id == execution_id))
            if requested_by is not None:
                status, error = ExecutionStatus.CANCELLED, f"cancelled by {requested_by}"
            changed = finish_execution(
                session, execution_id, status, error=error, now=self.clock()  # type: ignore[arg-type]
            )
            if changed:
                execution_finished(session, execution_id)  # type: ignore[arg-type]
            session.commit()
        if changed:
            log.info(
                "execution ended by the reconciler",
                extra={"execution_id": str(execution_id), "status": str(status), "error": error},
            )
            if self.on_reconciled is not None:
                self.on_reconciled(str(status))
        return changed

    def _status_of(self, execution_id: object) -> str | None:
        with self.session_maker() as session:
            return session.scalar(select(Execution.status).where(Execution.id == execution_id))

    def _never_claimed(self, execution_id: object) -> bool:
        """Still `starting`, nobody asked to cancel it, and within its start timeout: no runner
        ever ran a step of it, so launching it again is safe."""
        with self.session_maker() as session:
            row = session.execute(
                select(Execution.status, Execution.cancel_requested_at,
                       func.coalesce(Execution.admitted_at, Execution.created_at))
                .where(Execution.id == execution_id)
            ).one_or_none()
        if row is None:
            return False
        status, cancel_requested_at, since = row
        return (
            status == ExecutionStatus.STARTING
            and cancel_requested_at is None
            and since >= self.clock() - self.start_timeout
        )

    def _apply(self, outcome: JobOutcome) -> str | None:
        if outcome.killed and self.relaunch is not None and self._never_claimed(outcome.execution_id):
            # The runner was killed before it claimed the run (a platform fault, no step ran):
            # forget its Job; the next pass finds the run without one and launches it again.
            log.info(
                "runner killed before it claimed the run; it will be launched again",
                extra={"execution_id": str(outcome.execution_id), "reason": outcome.reason},
            )
            try:
                self.launcher.delete(outcome.job_name)
            except LaunchError as error:
                log.warning("could not delete the Job", extra={"execution_id": str(outcome.execution_id),
                                                               "error": str(error)})
            return None
        status = execution_status_for(outcome)
        error = error_for(outcome)
        if status == ExecutionStatus.TIMED_OUT and self._status_of(outcome.execution_id) == ExecutionStatus.STARTING:
            # Kubernetes counts the deadline from the Job's start, a pod that never ran included
            # (an image that never pulls, no node to run on): no runner claimed the run, so it
            # did not time out, it never started, and a retry would not help.
            status, error = ExecutionStatus.FAILED, f"runner never started: {error}"
        changed = status is not None and self._record(outcome.execution_id, status, error)
        if outcome.stuck:
            try:
                self.launcher.delete(outcome.job_name)
            except LaunchError as error:
                log.warning(
                    "could not delete a stuck Job",
                    extra={"execution_id": str(outcome.execution_id), "error": str(error)},
                )
        return str(status) if changed else None

    def _fail_jobless(self, existing: set[str]) -> Counter[str]:
        """Active executions whose Job does not exist: a `starting` one is launched again (a
        platform fault, e.g. a spawner that died holding it, must not fail a run); any one
        still without a Job after the start timeout is failed.

        The start timeout counts from admission for runs that waited in the queue. A run the
        launcher lists (a local launcher lists every live runner in its runs folder, its
        predecessors' too) is never failed here: its runner may still be working."""
        now = self.clock()
        cutoff = now - self.start_timeout
        since = func.coalesce(Execution.admitted_at, Execution.created_at)
        with self.session_maker() as session:
            candidates = list(
                session.execute(
                    select(Execution.id, Execution.status, since).where(
                        # Queued runs have no Job by design: they wait for a slot, not a start.
                        Execution.status.in_([str(s) for s in ACTIVE_STATUSES if s != ExecutionStatus.QUEUED]),
                        since < now - min(self.relaunch_grace, self.start_timeout),
                    )
                )
            )
        ended: Counter[str] = Counter()
        seconds = int(self.start_timeout.total_seconds())
        for execution_id, status, created in candidates:
            if job_name(execution_id) in existing:
                continue
            if self.launcher.process_ended(job_name(execution_id)):
                continue
            if created >= cutoff:
                if status == ExecutionStatus.STARTING and self.relaunch is not None:
                    extra = {"execution_id": str(execution_id)}
                    log.info("starting run has no runner Job; launching it again", extra=extra)
                    try:
                        if self.relaunch(execution_id):
                            ended["relaunched"] += 1
                    except Exception as error:  # one bad record must not stop the pass
                        log.warning("relaunch failed", extra={"execution_id": str(execution_id), "error": str(error)})
                continue
            reason = (
                f"no runner Job found {seconds}s after the execution was created"
                if status != ExecutionStatus.RUNNING
                else "the runner Job disappeared before the run ended"
            )
            if self._record(execution_id, ExecutionStatus.FAILED, reason):
                ended[ExecutionStatus.FAILED.value] += 1
        return ended
