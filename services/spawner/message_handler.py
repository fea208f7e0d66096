"""One queue message → one execution record and at most one Job (docs/architecture.md, Delivery).

The order is what makes redelivery and crashes harmless: insert the execution by its dedup key,
then create the deterministically named Job (409 is success), then mark it `starting`, and only
then may the caller delete the message. Whatever line the process dies on, the next delivery
finds the same row and the same Job name and finishes the work.

A run under a concurrency limit, a pool or a buffering overlap (services.spawner.admission) is
recorded `queued` instead and its message deleted: from then on the record is the queue, and
an admission pass (here, or in services.spawner.run_control when a slot frees) starts it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from services.core.db.models import TERMINAL_STATUSES, Execution, ExecutionStatus, Overlap
from services.core.executions import (
    NewExecution,
    existing_execution,
    finish_execution,
    get_execution,
    insert_execution,
    mark_starting,
)
from services.core.messages import MessageError, RunMessage, parse_message
from services.core.queue import ReceivedMessage
from services.notify.events import execution_finished
from services.spawner import admission
from services.spawner.jobs import ExecutionRef, JobBuilder, WorkflowRef, job_name
from services.spawner.launchers.base import Launcher, LaunchError
from services.spawner.metrics import SpawnerMetrics
from services.spawner.overlap import OverlapDecision, apply_overlap
from services.spawner.runner_template import RunnerTemplate

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Called at named points ("inserted", "launched", "recorded") with the execution id; tests
#: raise from it to simulate the process dying at exactly that line.
Checkpoint = Callable[[str, uuid.UUID], None]


class Disposition(StrEnum):
    DONE = "done"  # delete the message
    RETRY = "retry"  # leave it for redelivery
    DEAD_LETTER = "dead_letter"  # park it in the DLQ with the reason, then delete it


@dataclass(frozen=True)
class Result:
    disposition: Disposition
    reason: str | None = None
    execution_id: uuid.UUID | None = None
    #: The Job of this execution is known to exist (for `--drain` to wait on).
    launched: bool = False


#: Overlap policies decided when a run's message is handled (buffering is admission's business).
DECIDED_HERE = (Overlap.SKIP.value, Overlap.REPLACE.value)


@dataclass(frozen=True)
class Target:
    """What a message's run needs from its workflow and schedule, read in one round trip."""

    id: uuid.UUID
    timeout_seconds: int | None
    #: The parts of the definition the spawner acts on: `concurrency` and `pool`.
    definition: dict[str, Any]
    schedule_exists: bool
    overlap: str | None

    @property
    def pool(self) -> str | None:
        pool = self.definition.get("pool")
        return pool if isinstance(pool, str) else None


# Plain SQL, as the statements of services.core.executions: the spawner runs it for every message.
_FIND_TARGET = """
SELECT w.id, w.timeout_seconds, w.definition -> 'concurrency', w.definition -> 'pool', s.id, s.overlap
FROM workflows AS w LEFT OUTER JOIN schedules AS s ON s.id = %(schedule_id)s
WHERE w.id = %(workflow_id)s
"""


def find_target(connection: Connection, run: RunMessage) -> Target | None:
    """The run's workflow (None when it does not exist) and whether its schedule exists.

    Only the columns used, not the whole definition: a workflow with many steps would otherwise
    be read and parsed for every message.
    """
    parameters = {"workflow_id": run.workflow_id, "schedule_id": run.schedule_id}
    row = connection.exec_driver_sql(_FIND_TARGET, parameters).first()
    if row is None:
        return None
    definition = {key: value for key, value in (("concurrency", row[2]), ("pool", row[3])) if value is not None}
    return Target(row[0], row[1], definition, row[4] is not None, row[5])


def _record(connection: Connection, run: RunMessage) -> tuple[Target | None, NewExecution | None, bool]:
    """The message's execution record: (target, execution, created). The target is None when
    the workflow does not exist, the execution None when the schedule does not (nothing written)."""
    target = find_target(connection, run)
    if target is None:
        return target, None, False
    if run.schedule_id is not None and not target.schedule_exists:
        # The schedule was deleted after this message was first handled: its run exists and is
        # finished as any other (a new one is not recorded for a schedule that is gone).
        return target, existing_execution(connection, run.dedup_key), False
    execution, created = insert_execution(connection, run)
    return target, execution, created


def _record_launched(connection: Connection, execution_id: uuid.UUID, name: str) -> str | None:
    """Record the run's Job: `pending` → `starting` with its name. Returns None when it moved;
    else the run's status (admitted runs are `starting` already, without their Job's name)."""
    if mark_starting(connection, execution_id, name):
        return None
    unnamed = (Execution.id == execution_id) & Execution.job_name.is_(None)
    connection.execute(update(Execution).where(unnamed).values(job_name=name))
    return connection.scalar(select(Execution.status).where(Execution.id == execution_id))


class MessageHandler:
    def __init__(
        self,
        session_maker: sessionmaker[Session],
        launcher: Launcher,
        template: RunnerTemplate,
        metrics: SpawnerMetrics,
        max_receive_count: int | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.session_maker = session_maker
        self.engine: Engine = session_maker.kw["bind"]  # the per-message statements run on its connections
        self.launcher = launcher
        self.jobs = JobBuilder(template)
        self.metrics = metrics
        self.max_receive_count = max_receive_count
        self.checkpoint = checkpoint or (lambda stage, execution_id: None)
        #: Told about every execution whose Job this handler launched (`--drain` waits on them).
        self.on_launched: Callable[[uuid.UUID], None] = lambda execution_id: None

    def handle(self, message: ReceivedMessage) -> Result:
        try:
            run = parse_message(message.body)
        except MessageError as error:
            return Result(Disposition.DEAD_LETTER, f"malformed message: {error}")
        return self._spawn(message, run)

    def _spawn(self, message: ReceivedMessage, run: RunMessage) -> Result:
        target, execution, created = self._in_transaction(lambda connection: _record(connection, run))
        if target is None:
            return Result(Disposition.DEAD_LETTER, f"workflow {run.workflow_id} does not exist")
        if execution is None:
            return Result(Disposition.DEAD_LETTER, f"schedule {run.schedule_id} does not exist")
        workflow, overlap = target, target.overlap
        extra = {"execution_id": str(execution.id), "dedup_key": run.dedup_key}
        if created:
            self.metrics.executions_created.inc()
            log.info("execution created", extra=extra)
        else:
            self.metrics.duplicates.inc()
            log.info("duplicate message, execution exists", extra={**extra, "status": execution.status})
        self.checkpoint("inserted", execution.id)

        if execution.status in TERMINAL_STATUSES:
            return Result(Disposition.DONE, execution_id=execution.id)
        if execution.status == ExecutionStatus.QUEUED:
            return Result(Disposition.DONE, execution_id=execution.id)  # the record is its queue now

        if execution.status == ExecutionStatus.PENDING:
            decision = OverlapDecision()
            if overlap in DECIDED_HERE:
                with self.session_maker() as session:
                    decision = apply_overlap(session, session.get_one(Execution, execution.id))
                    session.commit()
            if decision.skipped:
                self.metrics.skipped.inc()
                log.info("execution skipped: the previous run is still active", extra=extra)
                return Result(Disposition.DONE, execution_id=execution.id)
            if decision.superseded:
                log.info("execution not started: a later run of its schedule replaced it", extra=extra)
                return Result(Disposition.DONE, execution_id=execution.id)
            try:
                for name in decision.jobs_to_delete:
                    self.launcher.delete(name)
                    self.metrics.cancelled.inc()
                    log.info("replaced run's Job deleted", extra={**extra, "job_name": name})
            except LaunchError as error:
                return self._launch_failed(message, execution.id, error)
            if admission.needs_admission(workflow.definition, overlap):
                admitted = self._admit(execution.id, workflow.pool, overlap, extra)
                if admitted is None:
                    return Result(Disposition.DONE, execution_id=execution.id)

        try:
            created_job = self._launch(execution, workflow)
        except LaunchError as error:
            return self._launch_failed(message, execution.id, error)
        if created_job and message.sent_at_ms:
            self.metrics.message_to_job.observe(max(0.0, time.time() - message.sent_at_ms / 1000))
        self.checkpoint("recorded", execution.id)
        return Result(Disposition.DONE, execution_id=execution.id, launched=True)

    def _admit(
        self, execution_id: uuid.UUID, pool: str | None, overlap: str | None, extra: dict[str, str]
    ) -> bool | None:
        """Queue the run and run an admission pass: True when it may start now, None when it
        waits (or was skipped by `buffer_one`); other runs admitted by the pass are launched."""
        with self.session_maker() as session:
            skipped = admission.enqueue(session, execution_id, pool, overlap)
            admitted = [] if skipped else admission.promote(session)
            status, reason = session.execute(
                select(Execution.status, Execution.queued_reason).where(Execution.id == execution_id)
            ).one()
            session.commit()
        if skipped:
            self.metrics.skipped.inc()
            log.info(skipped, extra=extra)
            return None
        for other in admitted:
            if other != execution_id:
                self.launch_admitted(other)
        if execution_id in admitted:
            return True
        if status != ExecutionStatus.QUEUED:  # cancelled while its message was being handled
            log.info(f"execution is {status}; not queued", extra=extra)
            return None
        self.metrics.queued.inc()
        log.info(f"execution queued: {reason}", extra=extra)
        return None

    def launch_admitted(self, execution_id: uuid.UUID) -> bool:
        """Launch a run an admission pass moved to `starting`; False when that failed (the
        run-control sweep tries again) or the run is no longer waiting for its Job."""
        with self.session_maker() as session:
            execution = get_execution(session, execution_id)
            if execution is None or execution.status != ExecutionStatus.STARTING or execution.job_name is not None:
                return False
            workflow = execution.workflow
            session.expunge_all()
        try:
            self._launch(execution, workflow)
        except LaunchError as error:
            log.warning(
                "could not create the runner Job of an admitted run; will retry",
                extra={"execution_id": str(execution_id), "error": str(error)},
            )
            return False
        self.metrics.admitted.inc()
        return True

    def relaunch(self, execution_id: uuid.UUID) -> bool:
        """Launch a `starting` run again from its record: its Job (or local process) is gone
        although the spawner recorded it, e.g. a local launcher held it in memory waiting for a
        slot when its spawner died (issue 15). The Job name is deterministic and the runner's
        claim lets only one runner run it, so a relaunch can never run the steps twice.
        False when the run is no longer `starting` or the launch failed (tried again later)."""
        with self.session_maker() as session:
            execution = get_execution(session, execution_id)
            if execution is None or execution.status != ExecutionStatus.STARTING:
                return False
            workflow = execution.workflow
            session.expunge_all()
        try:
            created = self._launch(execution, workflow)
        except LaunchError as error:
            log.warning(
                "could not relaunch a run whose runner Job is gone; will retry",
                extra={"execution_id": str(execution_id), "error": str(error)},
            )
            return False
        if created:
            self.metrics.relaunched.inc()
            log.info("runner Job relaunched from the execution record", extra={"execution_id": str(execution_id)})
        return created

    def _launch(self, execution: ExecutionRef, workflow: WorkflowRef) -> bool:
        """Create the run's Job, record it (`starting`, job name), and delete it again if the run
        was cancelled meanwhile. True when the Job was created now. Raises LaunchError."""
        extra = {"execution_id": str(execution.id)}
        job = self.jobs.build(execution, workflow)
        created_job = self.launcher.launch(job)
        name = job_name(execution.id)
        if created_job:
            self.metrics.jobs_created.inc()
        log.info(
            "runner Job created" if created_job else "runner Job already existed", extra={**extra, "job_name": name}
        )
        self.on_launched(execution.id)
        self.checkpoint("launched", execution.id)

        status = self._in_transaction(lambda connection: _record_launched(connection, execution.id, name))
        if status == ExecutionStatus.CANCELLED:
            # Cancelled (replaced, or by a user) while its Job was being created: it must not run.
            self.launcher.delete(name)
        return created_job

    def _in_transaction(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in a transaction on a pooled connection and commit; once more if that
        connection was dead. A connection, not an ORM session: the two units of work of every
        message are plain statements, and a session costs a third of their CPU.

        The spawner's pool does not ping a connection before each use (a round trip per
        checkout, twice per message); a connection that died meanwhile (a Postgres restart, a
        terminated backend) fails its first statement instead, and the pool is then refreshed.
        Both units of work are idempotent, so running one again is safe.
        """
        for attempt in (1, 2):
            try:
                with self.engine.begin() as connection:
                    return work(connection)
            except DBAPIError as error:
                if attempt == 2 or not error.connection_invalidated:
                    raise
                log.info("database connection was closed; retrying on a new one")
        raise AssertionError("unreachable")

    def _launch_failed(self, message: ReceivedMessage, execution_id: uuid.UUID, error: LaunchError) -> Result:
        """Leave the message for redelivery; on its last allowed receive, fail the execution."""
        self.metrics.spawn_failures.inc()
        extra = {"execution_id": str(execution_id), "receive_count": message.receive_count, "error": str(error)}
        last = self.max_receive_count is not None and message.receive_count >= self.max_receive_count
        if not last:
            log.warning("could not create the runner Job; will retry", extra=extra)
            return Result(Disposition.RETRY, str(error), execution_id)
        reason = f"could not create the runner Job after {message.receive_count} attempts: {error}"
        with self.session_maker() as session:
            if finish_execution(session, execution_id, ExecutionStatus.FAILED, error=reason):
                execution_finished(session, execution_id)
            session.commit()
        log.error("giving up on the runner Job; execution failed", extra=extra)
        return Result(Disposition.DEAD_LETTER, reason, execution_id)
