"""One dispatcher tick (`wfctl dispatch`, the CronJob's command).

Set-based: claims due schedules in large batches with `FOR UPDATE SKIP LOCKED`, reading only
the columns the tick needs; plans each distinct (timing, next_run_at, catch-up) group once;
sends one message per fire time; then writes every advance in one `UPDATE … FROM unnest(…)`,
the batch's ledger rows with one COPY, and commits (on a second connection, while the next batch
is claimed and planned; it is sent only after that commit). Send-then-commit: a crash between the two
re-sends the same messages on the next tick and the dedup keys absorb them. A concurrent tick
(another pod of the same Job, or an overlapping run) skips the rows this one holds, so no fire
time is sent twice by two ticks at once. Also enqueues due retries and prunes ledger entries
older than FIRE_TIME_RETENTION_DAYS, a bounded number per tick.
"""

from __future__ import annotations

import gc
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from services.contract import DISPATCHER_APPLICATION_NAME
from services.core.db.models import Execution, FireDecision, FireReason, NotificationEvent, Schedule, Trigger
from services.core.db.session import session_factory
from services.core.ledger import PRUNE_MAX_BATCHES, copy_fire_times, describe_reason, prune_fire_times
from services.core.messages import RunMessage, retry_dedup_key, schedule_dedup_key, scheduled_run_body, utc_iso
from services.core.queue import OutgoingMessage, Queue
from services.core.settings import Settings
from services.dispatcher import timing
from services.dispatcher.planning import jitter_delay, plan_fire_times, window_start
from services.notify import events as notify_events
from services.notify.rules import Rules, effective_rules
from services.notify.sender import Sender

log = logging.getLogger(__name__)

# Schedules claimed (and locked) per transaction: large enough that the per-batch round trips
# vanish, small enough that one batch's messages are sent in well under a second.
DEFAULT_BATCH_SIZE = 2000
# Dropped fire times a tick records per schedule: the most recent MAX_LEDGER_DROPS, and those
# older than the catch-up window (`outside_window`) only from LEDGER_LOOKBACK before it.
LEDGER_LOOKBACK = timedelta(days=7)
MAX_LEDGER_DROPS = 1000

SENT = FireDecision.SENT.value
DROPPED = FireDecision.DROPPED.value
SCHEDULE_TRIGGER = Trigger.SCHEDULE.value

# Only the columns the tick needs; ids as text (they go into message bodies and arrays as text);
# empty JSON objects as NULL so the common case costs no JSON parsing. Rows this tick already
# advanced (stamped with its `now`) are skipped: a `catchup: all` schedule capped at 100 sends
# continues on the next tick, not in a loop within this one. No growing exclusion list.
_CLAIM = """
SELECT id::text, workflow_id::text, cron, timezone, interval_seconds, anchor_at, run_at, start_at, end_at,
       next_run_at, catchup, catchup_window_seconds, jitter_seconds,
       NULLIF(input, '{}'::jsonb), NULLIF(notify, '{}'::jsonb), ctid::text
FROM schedules
WHERE enabled AND next_run_at <= %(now)s AND last_dispatched_at IS DISTINCT FROM %(now)s
ORDER BY next_run_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""

# Every advance of a batch in one statement. Each row is found by its physical address, one TID
# scan per row in a nested loop (the claim's row locks keep the address stable until commit):
# joined on `v.id` alone, or filtered with `ctid = ANY(…)`, Postgres scans and hashes the whole
# table for each batch, which is quadratic in the fleet's size. Arrays are passed as array
# literals (text), built once per batch.
_ADVANCE = """
UPDATE schedules AS s
SET next_run_at = v.next_run_at,
    last_dispatched_at = %(now)s,
    completed_at = CASE WHEN v.next_run_at IS NULL THEN %(now)s ELSE s.completed_at END
FROM unnest(%(ids)s::uuid[], %(next)s::timestamptz[], %(ctids)s::tid[]) AS v(id, next_run_at, address)
WHERE s.ctid = v.address AND s.id = v.id
"""

# The parts of workflow definitions notification rules read.
_WORKFLOW_RULES = """
SELECT id::text, definition->'notify', definition->'late_after', definition->'long_running_after'
FROM workflows WHERE id = ANY(%(ids)s::uuid[])
"""


@dataclass
class TickSummary:
    schedules_claimed: int = 0
    schedules_held: int = 0  # claimed but not plannable: left as they were, logged
    messages_sent: int = 0
    fire_times_dropped: int = 0
    retries_sent: int = 0
    deadline_notifications: int = 0
    notifications_sent: int = 0
    ledger_pruned: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        held = f", {self.schedules_held} that cannot be planned skipped (see the log)" if self.schedules_held else ""
        return (
            f"dispatch: {self.schedules_claimed} schedules claimed, {self.messages_sent} messages "
            f"sent ({self.retries_sent} retries), {self.fire_times_dropped} missed fire times "
            f"dropped{held}, {self.seconds:.3f}s"
        )


def dispatcher_sessions(database_url: str) -> sessionmaker[Session]:
    """The dispatcher's pool. A tick runs in a process of its own (the CronJob's pod, `wfctl
    dispatch`) on connections it just opened: a ping before each use would only add a round
    trip to each of the tick's transactions."""
    return session_factory(database_url, DISPATCHER_APPLICATION_NAME, pre_ping=False)


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


# --- planning, once per group ----------------------------------------------------------------

# What decides a schedule's plan: its timing, where it stands, and its catch-up policy. Schedules
# sharing all of it (most of a fleet on `0 * * * *`) are planned once.
GroupKey = tuple[
    str | None, str, int | None, datetime | None, datetime | None, datetime | None, datetime | None,
    datetime, str, int,
]


@dataclass(frozen=True, slots=True)
class GroupPlan:
    """One tick's decision for every schedule of a group."""

    # Each fire time to send: the instant, its text in messages (`utc_iso`), its exact text.
    sends: tuple[tuple[datetime, str, str], ...]
    # Each fire time the ledger records as dropped: the instant, its exact text, the reason.
    drops: tuple[tuple[datetime, str, str], ...]
    missed: int  # dropped fire times the summary counts (those in the window the plan dropped)
    resume: datetime | None  # the new next_run_at; None when no fire time is left
    resume_text: str  # `resume` in an array literal ('NULL' for None)
    error: str | None = None  # why the group could not be planned (it is left as it is)


def timing_of(key: GroupKey) -> timing.Timing:
    cron_text, zone, interval, anchor, run_at, start_at, end_at = key[:7]
    crons = tuple(part.strip() for part in (cron_text or "").split(";") if part.strip())
    return timing.Timing(crons, zone, interval, anchor, run_at, start_at, end_at)


def plan_group(key: GroupKey, now: datetime) -> GroupPlan:
    """The plan of every schedule with this key at `now` (pure)."""
    spec = timing_of(key)
    next_run_at, catchup, window = key[7], key[8], key[9]
    # Times older than the window are never run, so only computed for the ledger.
    plan_start = floor_to_minute(window_start(now, window))
    expired: list[datetime] = []
    if next_run_at < plan_start:
        lookback = max(next_run_at, plan_start - LEDGER_LOOKBACK)
        expired = timing.fire_times(spec, lookback, plan_start - timedelta(microseconds=1))[-MAX_LEDGER_DROPS:]
    due, following = timing.fire_times_and_next(spec, max(next_run_at, plan_start), now)
    plan = plan_fire_times(due, now, catchup, window)
    drops = [(t, FireReason.OUTSIDE_WINDOW.value) for t in expired] + [(t, r.value) for t, r in plan.drops]
    resume = plan.resume_from or following
    return GroupPlan(
        sends=tuple((t, _message_text(t), _exact_text(t)) for t in plan.to_send),
        drops=tuple((t, _exact_text(t), reason) for t, reason in drops[-MAX_LEDGER_DROPS:]),
        missed=len(plan.drops),
        resume=resume,
        resume_text="NULL" if resume is None else _exact_text(resume),
    )


def plan_or_hold(key: GroupKey, now: datetime) -> GroupPlan:
    """`plan_group`, or, when a group cannot be planned (a time zone its tzdata no longer has, a
    row written around validation), a plan that sends nothing and keeps its next_run_at: its
    schedules are skipped by this tick (and logged) instead of failing it for the whole fleet."""
    try:
        return plan_group(key, now)
    except Exception as error:  # any one row's problem must not stop the others
        next_run_at = key[7]
        return GroupPlan((), (), 0, next_run_at, _exact_text(next_run_at), f"{type(error).__name__}: {error}")


# Most groups of a tick share their fire times (the top of the hour) and many their resume times:
# format each instant once per process.
@lru_cache(maxsize=4096)
def _message_text(instant: datetime) -> str:
    return utc_iso(instant)


@lru_cache(maxsize=4096)
def _exact_text(instant: datetime) -> str:
    return instant.isoformat()


# --- notification hooks ----------------------------------------------------------------------


@dataclass
class _NotifyRules:
    """Which schedules' fire times notification hooks care about, read once per workflow.

    Most schedules have no rule for `missed` or `late`: they cost no statement and no ORM
    object. The few that do go through the notification hooks with their ORM rows.
    """

    workflows: dict[str, dict[str, Any]] = field(default_factory=dict)
    wanted: dict[tuple[str, str], tuple[bool, bool]] = field(default_factory=dict)

    def load(self, cursor: Any, workflow_ids: set[str]) -> None:
        missing = [w for w in workflow_ids if w not in self.workflows]
        if not missing:
            return
        cursor.execute(_WORKFLOW_RULES, {"ids": missing})
        for workflow_id, rules, late_after, long_running_after in cursor.fetchall():
            self.workflows[workflow_id] = {
                "notify": rules, "late_after": late_after, "long_running_after": long_running_after,
            }

    def wants(self, workflow_id: str, notify: dict[str, Any] | None) -> tuple[bool, bool]:
        """(missed, late): whether dropped / sent fire times of such a schedule need their hook."""
        key = (workflow_id, json.dumps(notify, sort_keys=True) if notify else "")
        found = self.wanted.get(key)
        if found is None:
            try:
                rules: Rules = effective_rules(self.workflows.get(workflow_id), notify)
                found = (
                    bool(rules.channels_for(NotificationEvent.MISSED)),
                    rules.late_after is not None and bool(rules.channels_for(NotificationEvent.LATE)),
                )
            except Exception:  # unreadable rules: the hook logs it, as for any other schedule
                found = (True, True)
            self.wanted[key] = found
        return found


def _notify(
    session: Session,
    dropped: list[tuple[str, datetime, str]],
    sent: list[tuple[str, datetime]],
) -> None:
    """Run the hooks for the fire times whose schedules have rules (same transaction)."""
    ids = {uuid.UUID(s) for s, *_ in dropped} | {uuid.UUID(s) for s, _ in sent}
    if not ids:
        return
    schedules = {str(s.id): s for s in session.scalars(select(Schedule).where(Schedule.id.in_(ids)))}
    for schedule_id, fire_time, reason in dropped:
        # A fire time the dispatcher dropped is `missed` for whoever asked to be told.
        notify_events.fire_time_dropped(session, schedules[schedule_id], fire_time, describe_reason(FireReason(reason)))
    notify_events.fire_times_sent(session, [(schedules[s], t) for s, t in sent])


# --- one batch -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Writes:
    """A planned batch: the messages to send, then the advances and ledger rows to commit."""

    outgoing: list[OutgoingMessage]
    advance: dict[str, Any]
    ledger: list[str]


def _driver_cursor(session: Session) -> Any:
    """A psycopg cursor on the session's connection, inside its transaction."""
    return session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]


def _process_batch(
    session: Session,
    cursor: Any,
    now: datetime,
    rows: Sequence[tuple[Any, ...]],
    plans: dict[GroupKey, GroupPlan],
    rules: _NotifyRules,
    summary: TickSummary,
) -> _Writes:
    """Plan one claimed batch and run its notification hooks; returns what to send and write."""
    rules.load(cursor, {row[1] for row in rows})
    decided = now.isoformat()
    outgoing: list[OutgoingMessage] = []
    ledger: list[str] = []  # rows in COPY text format (services.core.ledger.copy_fire_times)
    resumes: list[str] = []
    notify_dropped: list[tuple[str, datetime, str]] = []
    notify_sent: list[tuple[str, datetime]] = []
    for row in rows:
        schedule_id, workflow_id, jitter, payload, notify = row[0], row[1], row[12], row[13], row[14]
        key: GroupKey = row[2:12]  # type: ignore[assignment]
        plan = plans.get(key)
        if plan is None:
            plan = plans[key] = plan_or_hold(key, now)
        if plan.error is not None:
            summary.schedules_held += 1
            log.error(
                "schedule cannot be planned; skipped by this tick",
                extra={"event": "schedule_unplannable", "schedule_id": schedule_id, "error": plan.error},
            )
        summary.fire_times_dropped += plan.missed
        wants_missed, wants_late = rules.wants(workflow_id, notify)
        for fire_time, fire_exact, reason in plan.drops:
            ledger.append(f"{schedule_id}\t{fire_exact}\t{DROPPED}\t{reason}\t\\N\t\\N\t{decided}\n")
            if wants_missed:
                notify_dropped.append((schedule_id, fire_time, reason))
        if plan.sends:
            input_json = json.dumps(payload, separators=(",", ":"), sort_keys=True) if payload else "{}"
            for fire_time, fire_text, fire_exact in plan.sends:
                dedup_key = f"schedule:{schedule_id}:{fire_text}"
                body = scheduled_run_body(dedup_key, schedule_id, workflow_id, fire_text, input_json)
                outgoing.append(OutgoingMessage(body, jitter_delay(schedule_id, fire_time, jitter) if jitter else 0))
                ledger.append(f"{schedule_id}\t{fire_exact}\t{SENT}\t\\N\t{SCHEDULE_TRIGGER}\t{dedup_key}\t{decided}\n")
                if wants_late:
                    notify_sent.append((schedule_id, fire_time))
        resumes.append(plan.resume_text)
    _notify(session, notify_dropped, notify_sent)
    advance = {
        "now": now,
        "ids": "{" + ",".join(row[0] for row in rows) + "}",
        "next": "{" + ",".join(resumes) + "}",
        "ctids": "{" + ",".join(f'"{row[15]}"' for row in rows) + "}",
    }
    return _Writes(outgoing, advance, ledger)


def _commit_batch(session: Session, cursor: Any, writes: _Writes, after_send: Callable[[], None] | None) -> None:
    """Advance the batch's schedules, append its ledger rows, commit; the session is closed after.

    Runs on the tick's writer thread while the next batch is claimed and planned.
    """
    try:
        cursor.execute(_ADVANCE, writes.advance)
        copy_fire_times(cursor, writes.ledger)
        if after_send is not None:
            after_send()
        session.commit()
    finally:
        session.close()  # rolls back what was not committed


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


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the tick's batch loop.

    The loop allocates millions of short-lived objects (rows, datetimes, message and ledger
    strings) that reference counting frees as soon as a batch is done; the collector's passes
    over them find nothing, yet at 100,000 due schedules they cost a quarter of the tick's CPU.
    The few cycles the loop leaves (sessions, futures) are collected once it ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
    plans: dict[GroupKey, GroupPlan] = {}  # kept across batches: a fleet's groups recur in each
    rules = _NotifyRules()
    # Two batches in flight: while the writer thread advances, records and commits batch k, this
    # thread claims (its SKIP LOCKED passes over batch k's locked rows) and plans batch k+1 on a
    # second connection, then sends it once batch k is committed. Each batch is sent before it
    # is committed, and a failed commit stops the tick like a crash would (its messages are
    # re-sent by the next tick).
    with collector_paused(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="dispatch-commit") as writer:
        pending: deque[Future[None]] = deque()  # the batches being committed, oldest first
        for _ in range(1_000_000):
            session = session_maker()
            try:
                session.begin()
                cursor = _driver_cursor(session)
                cursor.execute(_CLAIM, {"now": current, "limit": batch_size})
                rows = cursor.fetchall()
                if not rows:
                    session.close()
                    break
                summary.schedules_claimed += len(rows)
                writes = _process_batch(session, cursor, current, rows, plans, rules, summary)
                # Send only once the batches before are committed: a failed one released its rows,
                # which this claim may then hold again, and they must not be sent twice by one tick.
                while pending:
                    pending.popleft().result()  # an earlier batch is committed (or its error is raised)
                if writes.outgoing:
                    summary.messages_sent += queue.send_batch(writes.outgoing)
            except BaseException:
                session.close()  # never committed (maybe sent): as after a crash
                raise
            pending.append(writer.submit(_commit_batch, session, cursor, writes, after_send))
        while pending:
            pending.popleft().result()
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
