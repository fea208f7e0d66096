"""The runner's database access: plain SQL over one psycopg connection.

Why not the ORM: the runner starts once per execution, and importing SQLAlchemy's ORM costs
more than everything else the runner does before its first step. The claim, the reads and the
step records are a handful of statements, written here against the tables of
`services.core.db.models`. The final status goes through `services.core.executions.
finish_execution` (imported only then), so retry scheduling lives in exactly one place.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from services.contract import CLAIMABLE_STATUSES, RUNNER_APPLICATION_NAME, ExecutionStatus, StepStatus
from services.core.settings import libpq_url


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
        with psycopg.connect(
            libpq_url(database_url), autocommit=True, connect_timeout=10, application_name=application_name
        ) as conn:
            yield cls(conn, database_url, application_name)

    def claim(self, execution_id: uuid.UUID) -> bool:
        """pending/starting → running, atomically; False when someone else got there first."""
        now = now_utc()
        row = self._conn.execute(
            "UPDATE executions SET status = %s, started_at = %s, updated_at = %s "
            "WHERE id = %s AND status = ANY(%s) RETURNING id",
            (ExecutionStatus.RUNNING.value, now, now, execution_id, list(CLAIMABLE_STATUSES)),
        ).fetchone()
        return row is not None

    def status(self, execution_id: uuid.UUID) -> str | None:
        row = self._conn.execute("SELECT status FROM executions WHERE id = %s", (execution_id,)).fetchone()
        return None if row is None else str(row[0])

    def load(self, execution_id: uuid.UUID) -> ExecutionRecord | None:
        row = self._conn.execute(
            "SELECT e.id, e.workflow_id, w.name, w.definition, e.trigger, e.scheduled_for, "
            "e.attempt, e.input, e.status FROM executions e JOIN workflows w ON w.id = e.workflow_id "
            "WHERE e.id = %s",
            (execution_id,),
        ).fetchone()
        return None if row is None else ExecutionRecord(*row)

    def integrations(self, names: Iterable[str]) -> dict[str, bytes]:
        """Ciphertext by name, for the names that exist."""
        rows = self._conn.execute(
            "SELECT name, ciphertext FROM integrations WHERE name = ANY(%s)", (sorted(set(names)),)
        ).fetchall()
        return {str(name): bytes(ciphertext) for name, ciphertext in rows}

    def start_step(self, execution_id: uuid.UUID, step_id: str, position: int, step_type: str) -> int:
        row = self._conn.execute(
            "INSERT INTO step_runs (execution_id, step_id, position, type, status, started_at) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (execution_id, step_id, position, step_type, StepStatus.RUNNING.value, now_utc()),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def end_step(self, step_run_id: int, status: str, output: Any = None, error: str | None = None) -> None:
        self._conn.execute(
            "UPDATE step_runs SET status = %s, output = %s, error = %s, finished_at = %s WHERE id = %s",
            (status, _json(output), error, now_utc(), step_run_id),
        )

    def record_step(
        self, execution_id: uuid.UUID, step_id: str, position: int, step_type: str,
        status: str, error: str | None = None,
    ) -> None:
        """A step that never started (skipped, or failed while rendering its parameters)."""
        now = now_utc()
        self._conn.execute(
            "INSERT INTO step_runs (execution_id, step_id, position, type, status, error, started_at, finished_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (execution_id, step_id, position, step_type, status, error, now, now),
        )

    def finish(self, execution_id: uuid.UUID, status: str, error: str | None = None, output: Any = None) -> bool:
        """End the execution through the shared state machine (which also schedules retries).

        The notification it causes (`failed`, `recovered`) is written in the same transaction.
        """
        from services.core.db.session import session_scope
        from services.core.executions import finish_execution
        from services.notify.events import execution_finished

        with session_scope(self._database_url, self._application_name) as session:
            finished = finish_execution(
                session, execution_id, ExecutionStatus(status), error=error, output=output,
                from_statuses=(ExecutionStatus.RUNNING.value,),
            )
            if finished:
                execution_finished(session, execution_id)
            return finished
