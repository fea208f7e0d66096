"""The consume loop of `wfctl spawn`: long-poll SQS, handle messages on a bounded pool, ack in
batches, keep slow messages invisible, reconcile periodically, and stop without losing anything.

Shutdown (SIGTERM, or `request_stop()`): no more polling; messages in hand are finished; anything
received but not started is handed back at once (visibility 0) rather than after its visibility
timeout; acks are flushed. A message is deleted only after its handler said DONE (Job exists and
the execution is recorded) or after it was parked in the DLQ, so a kill at any point costs at
most a redelivery, which the dedup key absorbs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from services.core.db.models import TERMINAL_STATUSES, Execution, ExecutionStatus
from services.core.queue import Queue, ReceivedMessage
from services.core.settings import SpawnerSettings
from services.notify.events import dead_lettered
from services.notify.sender import Sender
from services.spawner.dead_letters import dead_letter
from services.spawner.health import Heartbeat
from services.spawner.jobs import job_name
from services.spawner.launchers.base import Launcher
from services.spawner.message_handler import Disposition, MessageHandler, Result
from services.spawner.metrics import SpawnerMetrics
from services.spawner.reconciler import Reconciler
from services.spawner.run_control import RunControl

log = logging.getLogger(__name__)

MAX_VISIBILITY_SECONDS = 43_200
#: Messages held beyond the busy workers: a worker that finishes finds its next message waiting,
#: and every receive asks for a full batch of 10 instead of the one or two slots just freed
#: (a receive costs more CPU than handling a message; bench/bench_spawner.py).
PREFETCH = 10


@dataclass(frozen=True)
class SpawnerOptions:
    """What the loop runs with: the spawner's settings (services.core.settings, where their
    defaults live) and the queue's own settings, read from its attributes by `queue_settings`."""

    concurrency: int
    wait_seconds: int
    drain: bool
    #: After a stop request: how long to let messages in hand finish.
    grace_seconds: float
    reconcile_seconds: float
    #: How often the outbox sender delivers due notifications (the dispatcher's tick also does).
    notify_seconds: float
    #: Back-off before a failed message is retried: base * 2 ** (receive count - 1).
    retry_backoff_seconds: int
    visibility_timeout: int
    max_receive_count: int | None
    housekeeping_seconds: float = 0.2

    @classmethod
    def from_settings(
        cls, settings: SpawnerSettings, visibility_timeout: int, max_receive_count: int | None
    ) -> SpawnerOptions:
        return cls(
            concurrency=settings.concurrency,
            wait_seconds=settings.wait_seconds,
            drain=settings.drain,
            grace_seconds=settings.grace_seconds,
            reconcile_seconds=settings.reconcile_seconds,
            notify_seconds=settings.notify_seconds,
            retry_backoff_seconds=settings.retry_backoff_seconds,
            visibility_timeout=visibility_timeout,
            max_receive_count=max_receive_count,
        )


def queue_settings(queue: Queue) -> tuple[int, int | None]:
    """(VisibilityTimeout, maxReceiveCount of the RedrivePolicy or None) of the work queue."""
    attributes = queue.attributes()
    visibility = int(attributes.get("VisibilityTimeout", "30"))
    policy = attributes.get("RedrivePolicy")
    max_receives = int(json.loads(policy)["maxReceiveCount"]) if policy else None
    return visibility, max_receives


def retry_delay(base_seconds: int, receive_count: int, visibility_timeout: int) -> int:
    """Exponential back-off for a message left for redelivery, capped by the visibility timeout."""
    if base_seconds <= 0:
        return 0
    delay = base_seconds * 2 ** max(0, min(receive_count - 1, 16))
    return int(min(delay, visibility_timeout, MAX_VISIBILITY_SECONDS))


@dataclass
class _InFlight:
    message: ReceivedMessage
    extended_at: float = field(default_factory=time.monotonic)
    future: Future[None] | None = None


class Spawner:
    def __init__(
        self,
        queue: Queue,
        dlq: Queue,
        handler: MessageHandler,
        launcher: Launcher,
        reconciler: Reconciler,
        session_maker: Callable[[], Session],
        metrics: SpawnerMetrics,
        heartbeat: Heartbeat,
        options: SpawnerOptions,
        sender: Sender | None = None,
        run_control: RunControl | None = None,
    ) -> None:
        self.queue = queue
        self.dlq = dlq
        self.handler = handler
        self.launcher = launcher
        self.reconciler = reconciler
        self.session_maker = session_maker
        self.metrics = metrics
        self.heartbeat = heartbeat
        self.options = options
        self.sender = sender
        self.run_control = run_control
        self._stop = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._capacity = threading.Condition(self._lock)
        self._in_flight: dict[str, _InFlight] = {}
        self._acks: list[str] = []
        self._launched: dict[uuid.UUID, str] = {}
        self._last_receive_empty = False
        #: Set when the grace period ran out with work still in hand (the CLI then exits hard).
        self.forced = False
        handler.on_launched = self._note_launched

    # -- control ------------------------------------------------------------------------------

    def request_stop(self) -> None:
        if not self._stop.is_set():
            log.info("stop requested: finishing messages in hand")
        self._stop.set()
        with self._capacity:
            self._capacity.notify_all()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def idle(self) -> bool:
        """Nothing in hand and no delete pending (tests and benchmarks wait for this)."""
        with self._lock:
            return not self._in_flight and not self._acks

    def _note_launched(self, execution_id: uuid.UUID) -> None:
        """Runs launched outside a message (admitted from the queue) count for `--drain` too."""
        if self.options.drain:
            with self._lock:
                self._launched[execution_id] = job_name(execution_id)

    def launched(self) -> dict[uuid.UUID, str]:
        with self._lock:
            return dict(self._launched)

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> int:
        """Consume until stopped (or drained); returns the exit status."""
        pool = ThreadPoolExecutor(max_workers=self.options.concurrency, thread_name_prefix="spawn")
        background = [
            threading.Thread(target=self._housekeeping, name="housekeeping", daemon=True),
            threading.Thread(target=self._reconcile_loop, name="reconciler", daemon=True),
        ]
        if self.sender is not None:
            background.append(threading.Thread(target=self._notify_loop, name="notify", daemon=True))
        if self.run_control is not None:
            control = self.run_control
            background.append(threading.Thread(target=lambda: control.run(self._done), name="run-control", daemon=True))
        for thread in background:
            thread.start()
        log.info(
            "spawner started",
            extra={"concurrency": self.options.concurrency, "drain": self.options.drain},
        )
        try:
            while not self._stop.is_set():
                self.heartbeat.beat()
                free = self._wait_for_capacity(timeout=1.0)
                if free <= 0:
                    continue
                if self.options.drain and self._last_receive_empty and self._drained():
                    log.info("queue drained and every launched run finished")
                    break
                messages = self._receive(free)
                if self._stop.is_set():
                    self._release(messages)
                    break
                for message in messages:
                    entry = _InFlight(message)
                    with self._lock:
                        self._in_flight[message.receipt_handle] = entry
                    entry.future = pool.submit(self._work, message)
        finally:
            self._stop.set()
            self._finish(pool)
            self._done.set()
            for thread in background:
                thread.join(timeout=5)
        if self.options.drain:
            self._reconcile_once()
        log.info("spawner stopped", extra={"forced": self.forced})
        return 0

    def _wait_for_capacity(self, timeout: float) -> int:
        """How many messages to receive now: a full batch once no message waits for a worker
        (at most `concurrency` in hand), else 0 after waiting up to `timeout` for one to finish."""
        concurrency = self.options.concurrency
        with self._capacity:
            if len(self._in_flight) > concurrency and not self._stop.is_set():
                self._capacity.wait(timeout)
            if len(self._in_flight) > concurrency:
                return 0
            return concurrency + PREFETCH - len(self._in_flight)

    def _receive(self, free: int) -> list[ReceivedMessage]:
        try:
            messages = self.queue.receive(max_messages=min(10, free), wait_seconds=self.options.wait_seconds)
        except Exception as error:  # SQS unreachable: readiness reports it; keep trying gently
            log.warning("receive failed", extra={"error": f"{type(error).__name__}: {error}"})
            self._stop.wait(1.0)
            return []
        self._last_receive_empty = not messages
        if messages:
            self.metrics.messages_received.inc(len(messages))
        return messages

    def _work(self, message: ReceivedMessage) -> None:
        try:
            try:
                result = self.handler.handle(message)
            except Exception as error:  # a bug or an outage: log it, let the message come back
                log.exception("message handling failed", extra={"message_id": message.message_id})
                result = Result(Disposition.RETRY, f"{type(error).__name__}: {error}")
            self._settle(message, result)
        finally:
            with self._capacity:
                self._in_flight.pop(message.receipt_handle, None)
                self._capacity.notify_all()

    def _settle(self, message: ReceivedMessage, result: Result) -> None:
        # Only `--drain` waits on the runs it launched; a long-running spawner keeps no such set.
        if self.options.drain and result.launched and result.execution_id is not None:
            with self._lock:
                self._launched[result.execution_id] = job_name(result.execution_id)
        if result.disposition == Disposition.DONE:
            self._ack(message)
        elif result.disposition == Disposition.DEAD_LETTER:
            reason = result.reason or "unknown"
            try:
                dead_letter(self.dlq, message, reason)
            except Exception:
                log.exception(
                    "could not send to the DLQ; the message will come back", extra={"message_id": message.message_id}
                )
                return
            kind = (
                "malformed"
                if reason.startswith("malformed")
                else "spawn_failed"
                if result.execution_id
                else "unknown_reference"
            )
            self.metrics.dead_lettered.labels(reason=kind).inc()
            log.warning("message dead-lettered", extra={"message_id": message.message_id, "reason": reason})
            self._notify_dead_letter(message, reason)
            self._ack(message)
        else:
            delay = retry_delay(
                self.options.retry_backoff_seconds, message.receive_count, self.options.visibility_timeout
            )
            self._set_visibility(message, delay)

    def _notify_dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        """Write the `dead_lettered` notification before the original is deleted.

        A crash before this commits brings the message back; it is parked again and the same
        idempotency key keeps it to one notification. A database failure here only costs the
        notification (logged), never the message.
        """
        try:
            with self.session_maker() as session:
                dead_lettered(session, message.body, reason, message.message_id)
                session.commit()
        except Exception as error:
            log.warning(
                "could not record the dead-letter notification",
                extra={"message_id": message.message_id, "error": f"{type(error).__name__}: {error}"},
            )

    def _ack(self, message: ReceivedMessage) -> None:
        with self._lock:
            self._acks.append(message.receipt_handle)
            full = len(self._acks) >= 10
        if full:
            self._flush_acks()

    def _flush_acks(self) -> None:
        with self._lock:
            handles, self._acks = self._acks, []
        if not handles:
            return
        try:
            failed = self.queue.delete_batch(handles)
        except Exception as error:
            log.warning("delete failed; messages will be redelivered and absorbed", extra={"error": str(error)})
            return
        if failed:
            log.warning("some deletes failed; they will be redelivered and absorbed", extra={"count": len(failed)})

    def _set_visibility(self, message: ReceivedMessage, seconds: int) -> None:
        try:
            self.queue.change_visibility(message.receipt_handle, seconds)
        except Exception as error:  # it comes back when its visibility timeout ends anyway
            log.warning("could not change visibility", extra={"message_id": message.message_id, "error": str(error)})

    def _release(self, messages: list[ReceivedMessage]) -> None:
        for message in messages:
            self._set_visibility(message, 0)
        if messages:
            log.info("handed back unprocessed messages", extra={"count": len(messages)})

    # -- background duties --------------------------------------------------------------------

    def _housekeeping(self) -> None:
        while not self._done.wait(self.options.housekeeping_seconds):
            self._flush_acks()
            self._extend_visibility()

    def _extend_visibility(self) -> None:
        """Keep a slow message invisible: extend once half the visibility timeout has passed."""
        now = time.monotonic()
        half = self.options.visibility_timeout / 2
        with self._lock:
            due = [entry for entry in self._in_flight.values() if now - entry.extended_at >= half]
            for entry in due:
                entry.extended_at = now
        for entry in due:
            self._set_visibility(entry.message, self.options.visibility_timeout)

    def _reconcile_loop(self) -> None:
        while not self._done.wait(self.options.reconcile_seconds):
            self._reconcile_once()

    def _notify_loop(self) -> None:
        while not self._done.wait(self.options.notify_seconds):
            self._notify_once()

    def _notify_once(self) -> None:
        if self.sender is None:
            return
        try:
            summary = self.sender.run_once()
        except Exception as error:  # run_once does not raise; belt and braces for the loop
            log.warning("notification pass failed", extra={"error": f"{type(error).__name__}: {error}"})
            return
        if summary.attempted:
            log.info("notifications delivered", extra={"sent": summary.sent, "retrying": summary.retrying,
                                                       "failed": summary.failed})

    def _reconcile_once(self) -> None:
        try:
            ended = self.reconciler.run_once()
        except Exception as error:
            log.warning("reconcile pass failed", extra={"error": f"{type(error).__name__}: {error}"})
            return
        if ended:
            log.info("reconciled executions", extra={"ended": dict(ended)})

    # -- stopping -----------------------------------------------------------------------------

    def _finish(self, pool: ThreadPoolExecutor) -> None:
        # Messages received but not started go back at once: no worker will take them now.
        with self._lock:
            unstarted = [e for e in self._in_flight.values() if e.future is not None and e.future.cancel()]
            for entry in unstarted:
                self._in_flight.pop(entry.message.receipt_handle, None)
        self._release([entry.message for entry in unstarted])
        deadline = time.monotonic() + self.options.grace_seconds
        while time.monotonic() < deadline:
            with self._capacity:
                if not self._in_flight:
                    break
                self._capacity.wait(0.1)
        with self._lock:
            left = [entry.message for entry in self._in_flight.values()]
            self._in_flight.clear()
        if left:
            self.forced = True
            self._release(left)
        self._flush_acks()
        pool.shutdown(wait=not left, cancel_futures=True)

    def _drained(self) -> bool:
        """Nothing in hand, nothing queued, and every run this process launched has finished."""
        with self._lock:
            if self._in_flight or self._acks:
                return False
            launched = dict(self._launched)
        try:
            if self.queue.approximate_depth() > 0:
                return False
        except Exception:
            return False
        unfinished = [i for i, name in launched.items() if not self.launcher.process_ended(name)]
        try:
            with self.session_maker() as session:
                # Runs waiting for a slot are this spawner's to start once one frees; so are runs
                # admitted whose Job could not be created yet (`starting` without a Job name,
                # launched again by the run-control sweep).
                queued = Execution.status == ExecutionStatus.QUEUED.value
                admitted_without_job = (
                    (Execution.status == ExecutionStatus.STARTING.value)
                    & Execution.admitted_at.is_not(None)
                    & Execution.job_name.is_(None)
                )
                waiting = session.scalar(select(Execution.id).where(queued | admitted_without_job).limit(1))
                if waiting is not None:
                    return False
                if not unfinished:
                    return True
                statuses = session.execute(select(Execution.status).where(Execution.id.in_(unfinished))).scalars()
                return all(status in TERMINAL_STATUSES for status in statuses)
        except SQLAlchemyError as error:  # a database outage: not drained yet, ask again later
            log.warning("cannot read run statuses while draining", extra={"error": str(error).splitlines()[0]})
            return False
