"""A `starting` run whose Job is gone is launched again from its record, on the Kubernetes
launcher too, and fails only once its start timeout has passed (issue 15, Faults). The
reconciler runs on an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from services.core.db.models import Execution, ExecutionStatus
from services.core.db.session import session_factory
from services.core.executions import get_execution, insert_execution, transition
from services.spawner.jobs import job_name
from services.spawner.launchers.kube import KubernetesLauncher
from services.spawner.message_handler import MessageHandler
from services.spawner.metrics import SpawnerMetrics
from services.spawner.reconciler import Reconciler
from services.spawner.runner_template import DEFAULT_TEMPLATE_PATH, load_template_file
from tests.spawner.conftest import NAMESPACE, manual_message

START_TIMEOUT = timedelta(minutes=10)


def starting_without_job(db: str, workflow, created_ago: timedelta):
    """A run the spawner recorded `starting` (with its Job's name) whose Job no longer exists."""
    with session_factory(db)() as session:
        execution, _ = insert_execution(session, manual_message(workflow))
        transition(session, execution.id, ["pending"], ExecutionStatus.STARTING, job_name=job_name(execution.id))
        session.execute(
            update(Execution).where(Execution.id == execution.id).values(created_at=datetime.now(UTC) - created_ago)
        )
        session.commit()
        return execution.id


def status(db: str, execution_id) -> tuple[str, str | None]:
    with session_factory(db)() as session:
        row = get_execution(session, execution_id)
        return row.status, row.error


def test_a_jobless_starting_run_is_relaunched_then_failed_after_its_start_timeout(db, emulator, workflow):
    young = starting_without_job(db, workflow, timedelta(seconds=30))
    launcher = KubernetesLauncher(emulator.api_client(), NAMESPACE, start_timeout=START_TIMEOUT)
    sessions = session_factory(db)
    metrics = SpawnerMetrics()
    handler = MessageHandler(sessions, launcher, load_template_file(DEFAULT_TEMPLATE_PATH, NAMESPACE), metrics)
    now = datetime.now(UTC)
    reconciler = Reconciler(sessions, launcher, START_TIMEOUT, clock=lambda: now, relaunch=handler.relaunch)

    ended = reconciler.run_once()

    assert ended == {"relaunched": 1}
    assert job_name(young) in emulator.jobs()  # the same deterministic name, created again
    assert status(db, young) == (ExecutionStatus.STARTING, None)
    assert metrics.relaunched._value.get() == 1
    # The Job exists now: the next pass leaves the run alone.
    assert reconciler.run_once() == {}

    # A run whose Job keeps vanishing fails once its start timeout has passed on the clock.
    later = starting_without_job(db, workflow, timedelta(seconds=30))
    launcher_without_jobs = KubernetesLauncher(emulator.api_client(), NAMESPACE, start_timeout=START_TIMEOUT)
    never = Reconciler(
        sessions, launcher_without_jobs, START_TIMEOUT, clock=lambda: now + START_TIMEOUT, relaunch=lambda _: False,
    )
    never.run_once()
    state, error = status(db, later)
    assert state == ExecutionStatus.FAILED
    assert error == f"no runner Job found {int(START_TIMEOUT.total_seconds())}s after the execution was created"


def test_a_fresh_starting_run_is_not_relaunched_while_its_job_may_be_in_creation(db, emulator, workflow):
    fresh = starting_without_job(db, workflow, timedelta(seconds=1))
    launcher = KubernetesLauncher(emulator.api_client(), NAMESPACE, start_timeout=START_TIMEOUT)
    relaunched: list[object] = []
    reconciler = Reconciler(
        session_factory(db), launcher, START_TIMEOUT, relaunch=lambda e: relaunched.append(e) or True
    )
    assert reconciler.run_once() == {}
    assert relaunched == []
    assert status(db, fresh) == (ExecutionStatus.STARTING, None)
