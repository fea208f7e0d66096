"""A runner whose database connection is terminated (a failover, an operator's
pg_terminate_backend) reconnects and finishes the run: a lost connection is a platform fault,
not the run's failure (issue 15). Before, the next cancel poll raised and the run failed with
"runner error: OperationalError"."""

from __future__ import annotations

import time

import psycopg

from services.contract import RUNNER_APPLICATION_NAME
from services.core.settings import libpq_url
from tests.runtime.conftest import load, seed
from tests.runtime.test_signals_and_retries import start_runner, wait_for_step

NAPPER = """
name: napper
steps:
  - {id: nap, type: sleep, with: {seconds: 3}}
  - {id: after, type: log, with: {message: "done"}}
"""


def terminate(db: str, application_name: str) -> int:
    with psycopg.connect(libpq_url(db), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchall()
    return len(rows)


def test_a_runner_survives_its_connection_being_terminated(db) -> None:
    seeded = seed(db, NAPPER)
    process = start_runner(db, seeded)
    try:
        wait_for_step(db, seeded.execution_id, "nap", process)
        assert terminate(db, f"{RUNNER_APPLICATION_NAME} {seeded.execution_id}") >= 1
        time.sleep(0.2)
        code = process.wait(timeout=30)
    finally:
        process.kill()
        _, stderr = process.communicate()
    assert code == 0, stderr.decode()[-2000:]
    execution, steps = load(db, seeded.execution_id)
    assert execution.status == "succeeded", execution.error
    assert [(s.step_id, s.status) for s in steps] == [("nap", "succeeded"), ("after", "succeeded")]


def test_a_runner_waits_for_a_database_it_cannot_reach_yet(db, monkeypatch, caplog) -> None:
    """The Job starts while Postgres refuses connections (a restart, "too many clients"): the
    runner tries again instead of exiting 1 with nothing recorded."""
    import uuid

    from services.runtime import store as store_module

    real_open = store_module._open
    refusals = []

    def flaky_open(database_url: str, application_name: str):
        if len(refusals) < 3:
            refusals.append(application_name)
            raise psycopg.OperationalError("FATAL: sorry, too many clients already")
        return real_open(database_url, application_name)

    monkeypatch.setattr(store_module, "_open", flaky_open)
    with store_module.RunStore.connect(db, uuid.uuid4()) as store:
        assert store.status(uuid.uuid4()) is None  # connected and answering
    assert len(refusals) == 3
    assert sum("cannot reach the database yet" in r.getMessage() for r in caplog.records) == 3
