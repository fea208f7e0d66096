"""One dispatcher tick (`wfctl dispatch`, the CronJob's command).

Claims due schedules in batches with `FOR UPDATE SKIP LOCKED`, sends one message per fire time,
then advances `next_run_at`, records every decided fire time in the ledger and commits.
Send-then-commit: a crash between the two re-sends the same messages on the next tick and the
dedup keys absorb them. A concurrent tick skips the rows
this one holds, so no fire time is sent twice by two ticks at once. Also enqueues due retries
and prunes ledger entries older than FIRE_TIME_RETENTION_DAYS, a bounded number per tick.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from services.core.db.models import Execution, FireDecision, FireReason, Schedule, Trigger
from services.core.ledger import (
    PRUNE_MAX_BATCHES,
    FireTimeEntry,
    describe_reason,
    prune_fire_times,
    record_fire_times,
)
from services.core.messages import RunMessage, retry_dedup_key, schedule_dedup_key
from services.core.queue import OutgoingMessage, Queue
from services.core.settings import Settings
from services.dispatcher import timing
from services.dispatcher.planning import jitter_delay, plan_fire_times, window_start
from services.notify import events as notify_events
from services.notify.sender import Sender

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 100
# Dropped fire times a tick records per schedule: the most recent MAX_LEDGER_DROPS, and those
# older than the catch-up window (`outside_window`) only from LEDGER_LOOKBACK before it.
LEDGER_LOOKBACK = timedelta(days=7)
MAX_LEDGER_DROPS = 1000


@dataclass
class TickSummary:
    schedules_claimed: int = 0
    messages_sent: int = 0
    fire_times_dropped: int = 0
    retries_sent: int = 0
    deadline_notifications: int = 0
    notifications_sent: int = 0
    ledger_pruned: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"dispatch: {self.schedules_claimed} schedules claimed, {self.messages_sent} messages "
            f"sent ({self.retries_sent} retries), {self.fire_times_dropped} missed fire times "
            f"dropped, {self.seconds:.3f}s"
        )


def floor_to_minute(instant: datetime) -> datetime:
    return instant.replace(second=0, microsecond=0)


def schedule_message(schedule: Schedule, fire_time: datetime, trigger: Trigger = Trigger.SCHEDULE) -> RunMessage:
    return RunMessage(
        trigger=trigger,
        dedup_key=schedule_dedup_key(schedule.id, fire_time),
        workflow_id=schedule.workflow_id,
        schedule_id=schedule.id,
        scheduled_for=fire_time,
        input=dict(schedule.input or {}),
    )


def _claim_due_schedules(
    session: Session, now: datetime, limit: int, exclude: set[uuid.UUID]
) -> list[Schedule]:
    query = (
        select(Schedule)
        .where(Schedule.enabled.is_(True), Schedule.next_run_at <= now)
        .order_by(Schedule.next_run_at)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Schedule)
    )
    if exclude:
        query = query.where(Schedule.id.not_in(exclude))
    return list(session.scalars(query))


def _expired_before_window(schedule: Schedule, plan_start: datetime) -> list[datetime]:
    """Fire times from `next_run_at` up to the window start: never run, but recorded."""
    assert schedule.next_run_at is not None
    start = max(schedule.next_run_at, plan_start - LEDGER_LOOKBACK)
    times = timing.fire_times(timing.Timing.of(schedule), start, plan_start - timedelta(microseconds=1))
    return times[-MAX_LEDGER_DROPS:]


def _process_schedule_batch(
    session: Session, queue: Queue, now: datetime, schedules: list[Schedule], summary: TickSummary
) -> None:
    outgoing: list[OutgoingMessage] = []
    ledger: list[FireTimeEntry] = []
    advances: list[tuple[Schedule, datetime | None]] = []
    for schedule in schedules:
        assert schedule.next_run_at is not None
        spec = timing.Timing.of(schedule)
        # Times older than the window are never run, so only computed for the ledger.
        plan_start = floor_to_minute(window_start(now, schedule.catchup_window_seconds))
        start = max(schedule.next_run_at, plan_start)
        expired = _expired_before_window(schedule, plan_start) if schedule.next_run_at < plan_start else []
        due = timing.fire_times(spec, start, now)
        plan = plan_fire_times(due, now, schedule.catchup, schedule.catchup_window_seconds)
        summary.fire_times_dropped += len(plan.drops)
        drops = [(t, FireReason.OUTSIDE_WINDOW) for t in expired] + list(plan.drops)
        for fire_time, reason in drops[-MAX_LEDGER_DROPS:]:
            ledger.append(FireTimeEntry(schedule.id, fire_time, FireDecision.DROPPED, reason))
            # A fire time the dispatcher dropped is `missed` for whoever asked to be told.
            notify_events.fire_time_dropped(session, schedule, fire_time, describe_reason(reason))
        for fire_time in plan.to_send:
            notify_events.fire_time_sent(session, schedule, fire_time)
            message = schedule_message(schedule, fire_time)
            outgoing.append(
                OutgoingMessage(
                    body=message.to_json(),
                    delay_seconds=jitter_delay(schedule.id, fire_time, schedule.jitter_seconds),
                )
            )
            ledger.append(
                FireTimeEntry(
                    schedule.id, fire_time, FireDecision.SENT, trigger=Trigger.SCHEDULE.value,
                    dedup_key=message.dedup_key,
                )
            )
        resume = plan.resume_from or timing.next_fire_time(spec, now)
        advances.append((schedule, resume))
    summary.messages_sent += queue.send_batch(outgoing)
    for schedule, resume in advances:
        schedule.next_run_at = resume
        schedule.last_dispatched_at = now
        if resume is None:  # a one-off that fired, or past its end: nothing is left
            schedule.completed_at = now
    record_fire_times(session, ledger, decided_at=now)


def _prune_ledger(session_maker: sessionmaker[Session], now: datetime, summary: TickSummary) -> None:
    days = Settings.from_env().fire_time_retention_days
    for _ in range(PRUNE_MAX_BATCHES):
        with session_maker() as session, session.begin():
            deleted = prune_fire_times(session, now, days)
        summary.ledger_pruned += deleted
        if not deleted:
            return


def _enqueue_due_retries(
    session_maker: sessionmaker[Session], queue: Queue, now: datetime, batch_size: int, summary: TickSummary
) -> None:
    for _ in range(10_000):
        with session_maker() as session, session.begin():
            failed = list(
                session.scalars(
                    select(Execution)
                    .where(Execution.next_retry_at.is_not(None), Execution.next_retry_at <= now)
                    .order_by(Execution.next_retry_at)
                    .limit(batch_size)
                    .with_for_update(skip_locked=True, of=Execution)
                )
            )
            if not failed:
                return
            messages = [
                RunMessage(
                    trigger=Trigger.RETRY,
                    dedup_key=retry_dedup_key(execution.id, execution.attempt + 1),
                    workflow_id=execution.workflow_id,
                    schedule_id=execution.schedule_id,
                    scheduled_for=execution.scheduled_for,
                    attempt=execution.attempt + 1,
                    retry_of=execution.id,
                    input=dict(execution.input or {}),
                )
                for execution in failed
            ]
            sent = queue.send_batch([OutgoingMessage(body=m.to_json()) for m in messages])
            summary.messages_sent += sent
            summary.retries_sent += sent
            session.execute(
                update(Execution)
                .where(Execution.id.in_([e.id for e in failed]))
                .values(next_retry_at=None)
                .execution_options(synchronize_session=False)
            )


def _check_deadlines(session_maker: sessionmaker[Session], now: datetime, summary: TickSummary) -> None:
    """`late` and `long_running` notifications for deadlines passed at `now` (never raises)."""
    try:
        with session_maker() as session, session.begin():
            summary.deadline_notifications += notify_events.detect_late(session, now)
            summary.deadline_notifications += notify_events.detect_long_running(session, now)
    except Exception as error:  # a notification problem never fails the tick
        log.warning("deadline check failed", extra={"error": f"{type(error).__name__}: {error}"})


def tick(
    session_maker: sessionmaker[Session],
    queue: Queue,
    now: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    after_send: Callable[[], None] | None = None,
    sender: Sender | None = None,
) -> TickSummary:
    """Run one dispatcher tick at `now` (default: the current time).

    `after_send` is called after each batch is sent and before it is committed (tests use it to
    simulate a crash at exactly that point). `sender`, when given, delivers due notifications at
    the end of the tick (on its own clock).
    """
    started = time.monotonic()
    current = (now or datetime.now(UTC)).astimezone(UTC)
    summary = TickSummary()
    handled: set[uuid.UUID] = set()
    for _ in range(100_000):
        with session_maker() as session, session.begin():
            schedules = _claim_due_schedules(session, current, batch_size, handled)
            if not schedules:
                break
            summary.schedules_claimed += len(schedules)
            handled.update(s.id for s in schedules)
            _process_schedule_batch(session, queue, current, schedules, summary)
            if after_send is not None:
                after_send()
    _enqueue_due_retries(session_maker, queue, current, batch_size, summary)
    _check_deadlines(session_maker, current, summary)
    if sender is not None:
        summary.notifications_sent = sender.run_once().sent
    _prune_ledger(session_maker, current, summary)
    summary.seconds = time.monotonic() - started
    log.debug(
        "dispatch tick",
        extra={
            "event": "dispatch_tick",
            "schedules_claimed": summary.schedules_claimed,
            "messages_sent": summary.messages_sent,
        },
    )
    return summary
