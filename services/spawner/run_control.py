"""The spawner's run-control duty: stop cancelled runs and start queued runs when slots free.

Driven by Postgres LISTEN/NOTIFY on `RUN_CONTROL_CHANNEL` (services.core.executions): every
terminal transition sends `ended:<id>` and every cancel sends `cancel:<id>`, at commit. So a
cancelled run's Job is deleted (or its local process terminated) within moments, and a freed
slot is given to the oldest queued run without anyone polling.

Notifications are not stored: one sent while no spawner listened is gone. A sweep therefore
runs when the loop starts (a restarted spawner picks up where a dead one stopped) and then at
the reconciler's cadence: an admission pass, a relaunch of admitted runs whose Job was never
recorded, and a Job deletion for runs someone asked to cancel.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import psycopg
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.contract import SPAWNER_APPLICATION_NAME
from services.core.db.models import Execution, ExecutionStatus
from services.core.executions import RUN_CONTROL_CHANNEL, now_utc
from services.core.settings import libpq_url
from services.spawner import admission
from services.spawner.jobs import job_name
from services.spawner.launchers.base import Launcher, LaunchError
from services.spawner.message_handler import MessageHandler

log = logging.getLogger(__name__)

#: How long a listener waits for a notification before looking at the clock and the stop flag.
LISTEN_TIMEOUT_SECONDS = 1.0
#: An admitted run without a recorded Job for this long is launched again by the sweep.
STRANDED_SECONDS = 10.0
#: Cancelled runs younger than this get their Job deleted again by the sweep (idempotent).
RECENT_CANCEL = timedelta(hours=1)


class RunControl:
    def __init__(
        self,
        database_url: str,
        session_maker: Callable[[], Session],
        handler: MessageHandler,
        launcher: Launcher,
        sweep_seconds: float = 30.0,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        """`clock` is injectable (tests, the chaos suite) like the reconciler's."""
        self.database_url = database_url
        self.session_maker = session_maker
        self.handler = handler
        self.launcher = launcher
        self.sweep_seconds = sweep_seconds
        self.clock = clock

    # -- reactions ----------------------------------------------------------------------------

    def stop_run(self, execution_id: uuid.UUID) -> None:
        """Delete the run's Job (the local launcher terminates its process); the runner records
        `cancelled` on its SIGTERM. Deleting a Job that does not exist is no error."""
        try:
            self.launcher.delete(job_name(execution_id))
            self.handler.metrics.cancel_stops.inc()
            log.info("cancelled run's Job deleted", extra={"execution_id": str(execution_id)})
        except LaunchError as error:
            log.warning(
                "could not delete a cancelled run's Job; the sweep tries again",
                extra={"execution_id": str(execution_id), "error": str(error)},
            )

    def admit(self) -> list[uuid.UUID]:
        """An admission pass, then launch what it admitted."""
        with self.session_maker() as session:
            admitted = admission.promote(session)
            session.commit()
        for execution_id in admitted:
            log.info("queued run admitted", extra={"execution_id": str(execution_id)})
            self.handler.launch_admitted(execution_id)
        return admitted

    def sweep(self) -> None:
        """What notifications would have caused, for the ones nobody heard."""
        self.admit()
        now = self.clock()
        cutoff = now - RECENT_CANCEL
        with self.session_maker() as session:
            stranded = admission.stranded(session, STRANDED_SECONDS, now)
            to_stop = list(
                session.scalars(
                    select(Execution.id).where(
                        Execution.cancel_requested_at.is_not(None),
                        Execution.cancel_requested_at > cutoff,
                        Execution.status.in_([ExecutionStatus.RUNNING.value, ExecutionStatus.CANCELLED.value]),
                        Execution.job_name.is_not(None),
                    )
                )
            )
        for execution_id in stranded:
            extra = {"execution_id": str(execution_id)}
            log.info("relaunching an admitted run whose Job was never recorded", extra=extra)
            self.handler.launch_admitted(execution_id)
        for execution_id in to_stop:
            if not self.launcher.process_ended(job_name(execution_id)):
                self.stop_run(execution_id)

    def handle(self, payloads: list[str]) -> None:
        cancelled: list[uuid.UUID] = []
        for payload in payloads:
            kind, _, value = payload.partition(":")
            if kind == "cancel":
                try:
                    cancelled.append(uuid.UUID(value))
                except ValueError:
                    log.warning("ignoring a malformed run-control notification", extra={"payload": payload[:200]})
        for execution_id in dict.fromkeys(cancelled):
            self.stop_run(execution_id)
        self.admit()

    # -- the loop -----------------------------------------------------------------------------

    def run(self, done: threading.Event) -> None:
        """Listen and react until `done` is set; reconnects after a database outage."""
        last_sweep = 0.0
        while not done.is_set():
            try:
                with psycopg.connect(
                    libpq_url(self.database_url), autocommit=True, connect_timeout=10,
                    application_name=SPAWNER_APPLICATION_NAME,
                ) as conn:
                    conn.execute(f"LISTEN {RUN_CONTROL_CHANNEL}")
                    # Listening before sweeping: nothing that happens after the sweep is missed.
                    self._safely(self.sweep)
                    last_sweep = time.monotonic()
                    while not done.is_set():
                        payloads = [n.payload for n in conn.notifies(timeout=LISTEN_TIMEOUT_SECONDS, stop_after=1)]
                        if payloads:
                            payloads += [n.payload for n in conn.notifies(timeout=0.05)]
                            self._safely(lambda batch=payloads: self.handle(batch))
                        if time.monotonic() - last_sweep >= self.sweep_seconds:
                            self._safely(self.sweep)
                            last_sweep = time.monotonic()
            except psycopg.Error as error:
                log.warning("run-control listener lost the database; reconnecting", extra={"error": str(error)[:200]})
                done.wait(2.0)

    @staticmethod
    def _safely(action: Callable[[], object]) -> None:
        try:
            action()
        except Exception as error:  # a database hiccup or a bug: log it, keep listening
            log.warning("run-control pass failed", extra={"error": f"{type(error).__name__}: {error}"[:300]})
