"""Ends executions the runner could not end itself ("every execution ends": docs/architecture.md).

The runner writes its own final status; it cannot when its pod is killed at the deadline or for
memory, when its image never pulls, or when its Job never got created. Each pass compares the
runner Jobs that exist with the executions that are still active and records what happened, with
`finish_execution` — a conditional update, so a status the runner wrote always wins and retries
are scheduled as for any other failure.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.db.models import ACTIVE_STATUSES, Execution, ExecutionStatus
from services.core.executions import finish_execution
from services.notify.events import execution_finished
from services.spawner.jobs import job_name
from services.spawner.launchers.base import Launcher, LaunchError
from services.spawner.outcomes import JobOutcome, error_for, execution_status_for

log = logging.getLogger(__name__)

DEFAULT_START_TIMEOUT = timedelta(minutes=10)


class Reconciler:
    def __init__(
        self,
        session_maker: Callable[[], Session],
        launcher: Launcher,
        start_timeout: timedelta = DEFAULT_START_TIMEOUT,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_reconciled: Callable[[str], None] | None = None,
    ) -> None:
        self.session_maker = session_maker
        self.launcher = launcher
        self.start_timeout = start_timeout
        self.clock = clock
        self.on_reconciled = on_reconciled

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
            changed = finish_execution(session, execution_id, status, error=error)  # type: ignore[arg-type]
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

    def _apply(self, outcome: JobOutcome) -> str | None:
        status = execution_status_for(outcome)
        changed = status is not None and self._record(outcome.execution_id, status, error_for(outcome))
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
        """Active executions older than the start timeout whose Job does not exist."""
        cutoff = self.clock() - self.start_timeout
        with self.session_maker() as session:
            candidates = list(
                session.execute(
                    select(Execution.id, Execution.status).where(
                        # Queued runs have no Job by design: they wait for a slot, not a start.
                        Execution.status.in_([str(s) for s in ACTIVE_STATUSES if s != ExecutionStatus.QUEUED]),
                        Execution.created_at < cutoff,
                    )
                )
            )
        ended: Counter[str] = Counter()
        seconds = int(self.start_timeout.total_seconds())
        for execution_id, status in candidates:
            if job_name(execution_id) in existing:
                continue
            if self.launcher.process_ended(job_name(execution_id)):
                continue
            reason = (
                f"no runner Job found {seconds}s after the execution was created"
                if status != ExecutionStatus.RUNNING
                else "the runner Job disappeared before the run ended"
            )
            if self._record(execution_id, ExecutionStatus.FAILED, reason):
                ended[ExecutionStatus.FAILED.value] += 1
        return ended
