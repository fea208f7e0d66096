"""The runner's database access: plain SQL over one psycopg connection.

Why not the ORM: the runner starts once per execution, and importing SQLAlchemy's ORM costs
more than everything else the runner does before its first step. The claim, the reads and the
step records are a handful of statements, written here against the tables of
`services.core.db.models`. The final status goes through `services.core.executions.
finish_execution` (imported only then), so retry scheduling lives in exactly one place.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from services.contract import CLAIMABLE_STATUSES, RUNNER_APPLICATION_NAME, ExecutionStatus, StepStatus
from services.core.settings import libpq_url

log = logging.getLogger(__name__)
T = TypeVar("T")


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ExecutionRecord:
    id: uuid.UUID
    workflow_id: uuid.UUID
    workflow_name: str
    definition: Any
    trigger: str
    scheduled_for: datetime | None
    attempt: int
    input: Any
    status: str
    rerun_of: uuid.UUID | None = None
    rerun_from_step: str | None = None
    #: The dedup key of the first execution of this run's retry chain (the fire time's key for
    #: a scheduled run): the base of the steps' idempotency keys.
    root_dedup_key: str = ""


@dataclass(frozen=True)
class RecordedStep:
    """A step of an earlier execution, as a re-run reuses it."""

    step_id: str
    status: str
    output: Any


#: Step statuses whose recorded output a re-run may reuse.
REUSABLE = ("succeeded", "skipped", "reused")
#: How far back a retry chain is followed for the idempotency key's base (attempts are ≤ 20).
MAX_CHAIN = 64


#: How long the runner keeps trying to reach Postgres again after losing its connection.
RECONNECT_SECONDS = 60.0


def _open(database_url: str, application_name: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        libpq_url(database_url), autocommit=True, connect_timeout=10, application_name=application_name
    )


def _patiently(attempt: Callable[[], T], errors: tuple[type[Exception], ...], warning: str,
               between: Callable[[], None] = lambda: None) -> T:
    """`attempt()`, tried again after `errors` (doubling pauses up to 2 s) for up to
    RECONNECT_SECONDS, then the last error is raised. A database that is unreachable, full or
    restarting is a platform fault: it must not fail the run (issue 15). `between` runs after
    each failure (e.g. closing a broken connection)."""
    deadline = time.monotonic() + RECONNECT_SECONDS
    delay = 0.1
    while True:
        try:
            return attempt()
        except errors as error:
            if time.monotonic() + delay > deadline:
                raise
            log.warning(warning, extra={"error": str(error)[:200]})
            between()
            time.sleep(delay)
            delay = min(2.0, delay * 2)


def _json(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


class RunStore:
    def __init__(self, connection: psycopg.Connection[Any], database_url: str, application_name: str) -> None:
        self._conn = connection
        self._database_url = database_url
        self._application_name = application_name

    @classmethod
    @contextmanager
    def connect(cls, database_url: str, execution_id: uuid.UUID) -> Iterator[RunStore]:
        """One connection for the run, named `wfr-runner <execution-id>` in pg_stat_activity."""
        application_name = f"{RUNNER_APPLICATION_NAME} {execution_id}"
        # The first connection too: a database briefly unreachable or full ("too many clients")
        # when the Job starts must not fail the run without a word on its record.
        connection = _patiently(
            lambda: _open(database_url, application_name), (psycopg.OperationalError,),
            "runner cannot reach the database yet; trying again",
        )
        store = cls(connection, database_url, application_name)
        try:
            yield store
        finally:
            store._conn.close()

    def _execute(self, query: str, params: Any = None) -> psycopg.Cursor[Any]:
        """Run one statement; when the connection was lost (a Postgres restart or failover, an
        operator's pg_terminate_backend), open a new one and run it again, for up to
        RECONNECT_SECONDS. A lost connection is a platform fault: it must not fail the run
        (issue 15). Statements are autocommitted one by one, and a terminated connection fails
        the next statement before it runs, so running it again does not apply it twice."""

        def run() -> psycopg.Cursor[Any]:
            if self._conn.closed or self._conn.broken:
                self._conn = _open(self._database_url, self._application_name)
            return self._conn.execute(query, params)

        def close() -> None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass

        return _patiently(run, (psycopg.OperationalError,), "runner lost its database connection; reconnecting", close)

    def claim(self, execution_id: uuid.UUID) -> bool:
        """pending/starting → running, atomically; False when someone else got there first."""
        now = now_utc()
        row = self._execute(
            "UPDATE executions SET status = %s, started_at = %s, updated_at = %s "
            "WHERE id = %s AND status = ANY(%s) RETURNING id",
            (ExecutionStatus.RUNNING.value, now, now, execution_id, list(CLAIMABLE_STATUSES)),
        ).fetchone()
        return row is not None

    def status(self, execution_id: uuid.UUID) -> str | None:
        row = self._execute("SELECT status FROM executions WHERE id = %s", (execution_id,)).fetchone()
        return None if row is None else str(row[0])

    def load(self, execution_id: uuid.UUID) -> ExecutionRecord | None:
        row = self._execute(
            "WITH RECURSIVE chain(id, retry_of, dedup_key, depth) AS ("
            " SELECT id, retry_of, dedup_key, 0 FROM executions WHERE id = %s"
            " UNION ALL SELECT p.id, p.retry_of, p.dedup_key, c.depth + 1 FROM executions p"
            " JOIN chain c ON p.id = c.retry_of WHERE c.depth < %s) "
            "SELECT e.id, e.workflow_id, w.name, w.definition, e.trigger, e.scheduled_for, "
            "e.attempt, e.input, e.status, e.rerun_of, e.rerun_from_step, "
            "(SELECT dedup_key FROM chain ORDER BY depth DESC LIMIT 1) "
            "FROM executions e JOIN workflows w ON w.id = e.workflow_id WHERE e.id = %s",
            (execution_id, MAX_CHAIN, execution_id),
        ).fetchone()
        return None if row is None else ExecutionRecord(*row)

    def cancel_requested_by(self, execution_id: uuid.UUID) -> str | None:
        """Who asked to cancel this run (None: nobody). One primary-key read; polled by the runner."""
        row = self._execute(
            "SELECT cancel_requested_by, status FROM executions WHERE id = %s", (execution_id,)
        ).fetchone()
        if row is None:
            return None
        by, status = row
        if by is None and status == "cancelled":
            return "the platform"  # cancelled without a request (e.g. replaced by overlap)
        return None if by is None else str(by)

    def recorded_steps(self, execution_id: uuid.UUID) -> dict[str, RecordedStep]:
        """The reusable steps of an earlier execution, with their full (redacted) outputs."""
        rows = self._execute(
            "SELECT step_id, status, COALESCE(full_output, output) FROM step_runs "
            "WHERE execution_id = %s AND status = ANY(%s)",
            (execution_id, list(REUSABLE)),
        ).fetchall()
        return {str(step_id): RecordedStep(str(step_id), str(status), output) for step_id, status, output in rows}

    def record_reused(
        self, execution_id: uuid.UUID, step_id: str, position: int, step_type: str, output: Any, full_output: Any
    ) -> None:
        now = now_utc()
        self._execute(
            "INSERT INTO step_runs (execution_id, step_id, position, type, status, output, full_output, "
            "attempts, started_at, finished_at) VALUES (%s, %s, %s, %s, 'reused', %s, %s, 0, %s, %s)",
            (execution_id, step_id, position, step_type, _json(output), _json(full_output), now, now),
        )

    def record_failed_attempt(self, step_run_id: int, attempt: int, kind: str, error: str, retrying: bool) -> None:
        """Attempt `attempt` failed: keep its error; when the step tries again, count that attempt."""
        entry = {"attempt": attempt, "kind": kind, "error": error, "at": now_utc().isoformat()}
        self._execute(
            "UPDATE step_runs SET attempts = %s, attempt_errors = COALESCE(attempt_errors, '[]'::jsonb) || %s "
            "WHERE id = %s",
            (attempt + 1 if retrying else attempt, Jsonb([entry]), step_run_id),
        )

    def integrations(self, names: Iterable[str]) -> dict[str, bytes]:
        """Ciphertext by name, for the names that exist."""
        rows = self._execute(
            "SELECT name, ciphertext FROM integrations WHERE name = ANY(%s)", (sorted(set(names)),)
        ).fetchall()
        return {str(name): bytes(ciphertext) for name, ciphertext in rows}

    def start_step(self, execution_id: uuid.UUID, step_id: str, position: int, step_type: str) -> int:
        row = self._execute(
            "INSERT INTO step_runs (execution_id, step_id, position, type, status, started_at) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (execution_id, step_id, position, step_type, StepStatus.RUNNING.value, now_utc()),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def end_step(
        self, step_run_id: int, status: str, output: Any = None, error: str | None = None, full_output: Any = None
    ) -> None:
        self._execute(
            "UPDATE step_runs SET status = %s, output = %s, error = %s, full_output = %s, finished_at = %s "
            "WHERE id = %s",
            (status, _json(output), error, _json(full_output), now_utc(), step_run_id),
        )

    def record_step(
        self, execution_id: uuid.UUID, step_id: str, position: int, step_type: str,
        status: str, error: str | None = None,
    ) -> None:
        """A step that never started (skipped, or failed while rendering its parameters)."""
        now = now_utc()
        self._execute(
            "INSERT INTO step_runs (execution_id, step_id, position, type, status, error, started_at, finished_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (execution_id, step_id, position, step_type, status, error, now, now),
        )

    def finish(self, execution_id: uuid.UUID, status: str, error: str | None = None, output: Any = None) -> bool:
        """End the execution through the shared state machine (which also schedules retries).

        The notification it causes (`failed`, `recovered`) is written in the same transaction.
        """
        from sqlalchemy.exc import OperationalError

        from services.core.db.session import session_scope
        from services.core.executions import finish_execution
        from services.notify.events import execution_finished

        def record() -> bool:
            with session_scope(self._database_url, self._application_name) as session:
                finished = finish_execution(
                    session, execution_id, ExecutionStatus(status), error=error, output=output,
                    from_statuses=(ExecutionStatus.RUNNING.value,),
                )
                if finished:
                    execution_finished(session, execution_id)
                return finished

        # Nothing was committed (or it was, and the conditional update finds the run ended):
        # trying again is safe, and losing the result is not.
        return _patiently(record, (OperationalError,), "could not record the result; retrying")
