"""Schedules: create, pause, resume, delete, preview and backfill (the service behind the CLI)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.core import cron
from services.core.db.models import Catchup, Execution, Overlap, Schedule, Trigger
from services.core.errors import NotFoundError, UserError
from services.core.inputs import check_input
from services.core.messages import schedule_dedup_key
from services.core.queue import OutgoingMessage, Queue
from services.core.workflows import get_workflow
from services.dispatcher.tick import schedule_message

MAX_JITTER_SECONDS = 900
MAX_BACKFILL_FIRE_TIMES = 10_000
MAX_CATCHUP_WINDOW_SECONDS = 2**31 - 1  # the column is a 32-bit integer
# Cron math needs a few hours of room either side of a time (DST margins, time zone offsets).
FIRST_SUPPORTED_YEAR, LAST_SUPPORTED_YEAR = 2, 9998
#: Matched whole (`fullmatch`): `$` in `re.match` would accept a name ending in a newline.
NAME_PATTERN = r"[a-z0-9]([a-z0-9._-]{0,251}[a-z0-9])?"
#: The `schedules.cron` column's size; checked before the database sees it.
MAX_CRON_LENGTH = 255


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule as given by a user, before validation."""

    name: str
    workflow: str
    cron: str
    timezone: str = "UTC"
    input: dict[str, Any] | None = None
    catchup: str = Catchup.LATEST.value
    catchup_window_seconds: int = 86400
    overlap: str = Overlap.ALLOW.value
    jitter_seconds: int = 0
    enabled: bool = True


def _choice(field: str, value: str, allowed: type[Catchup] | type[Overlap]) -> str:
    try:
        return allowed(value).value
    except ValueError:
        options = ", ".join(v.value for v in allowed)
        raise UserError(field, f"{value!r} is not one of {options}") from None


def _check_name(name: str) -> None:
    import re

    if not re.fullmatch(NAME_PATTERN, name):
        raise UserError("name", f"{name[:80]!r} must be lowercase letters, digits, '-', '_' or '.'")


def create_schedule(session: Session, spec: ScheduleSpec, now: datetime | None = None) -> Schedule:
    """Validate every field first, then insert; nothing is written when any field is bad."""
    _check_name(spec.name)
    if len(" ".join(spec.cron.split())) > MAX_CRON_LENGTH:
        raise UserError("cron", f"is longer than {MAX_CRON_LENGTH} characters")
    expression = cron.validate_expression(spec.cron)
    cron.validate_timezone(spec.timezone)
    catchup = _choice("catchup", spec.catchup, Catchup)
    overlap = _choice("overlap", spec.overlap, Overlap)
    if not 0 <= spec.jitter_seconds <= MAX_JITTER_SECONDS:
        raise UserError("jitter", f"{spec.jitter_seconds} is outside 0-{MAX_JITTER_SECONDS} seconds")
    if spec.catchup_window_seconds < 0:
        raise UserError("catchup-window", "must be zero or more seconds")
    if spec.catchup_window_seconds > MAX_CATCHUP_WINDOW_SECONDS:
        raise UserError("catchup-window", f"must be at most {MAX_CATCHUP_WINDOW_SECONDS} seconds")
    payload = check_input(spec.input or {})
    workflow = get_workflow(session, spec.workflow)
    if session.scalar(select(Schedule.id).where(Schedule.name == spec.name)) is not None:
        raise UserError("name", f"a schedule named {spec.name!r} already exists")
    current = (now or datetime.now(UTC)).astimezone(UTC)
    schedule = Schedule(
        name=spec.name,
        workflow_id=workflow.id,
        cron=expression,
        timezone=spec.timezone,
        input=payload,
        enabled=spec.enabled,
        catchup=catchup,
        catchup_window_seconds=spec.catchup_window_seconds,
        overlap=overlap,
        jitter_seconds=spec.jitter_seconds,
        next_run_at=cron.next_fire_time(expression, spec.timezone, current),
    )
    session.add(schedule)
    session.flush()
    return schedule


def get_schedule(session: Session, name: str, for_update: bool = False) -> Schedule:
    query = select(Schedule).where(Schedule.name == name)
    if for_update:
        query = query.with_for_update(of=Schedule)
    schedule = session.scalar(query)
    if schedule is None:
        raise NotFoundError("schedule", f"no schedule named {name!r}")
    return schedule


def list_schedules(session: Session) -> list[Schedule]:
    return list(session.scalars(select(Schedule).order_by(Schedule.name)))


def pause_schedule(session: Session, name: str) -> Schedule:
    schedule = get_schedule(session, name, for_update=True)
    schedule.enabled = False
    schedule.updated_at = datetime.now(UTC)
    return schedule


def resume_schedule(session: Session, name: str, now: datetime | None = None) -> Schedule:
    """Resume from now: fire times that passed while paused are not replayed."""
    schedule = get_schedule(session, name, for_update=True)
    current = (now or datetime.now(UTC)).astimezone(UTC)
    if not schedule.enabled:
        schedule.enabled = True
        schedule.next_run_at = cron.next_fire_time(schedule.cron, schedule.timezone, current)
        schedule.updated_at = current
    return schedule


def delete_schedule(session: Session, name: str) -> None:
    schedule = get_schedule(session, name, for_update=True)
    session.execute(delete(Schedule).where(Schedule.id == schedule.id))


def preview_fire_times(schedule: Schedule, count: int, after: datetime | None = None) -> list[datetime]:
    if not 1 <= count <= 1000:
        raise UserError("count", "must be between 1 and 1000")
    current = (after or datetime.now(UTC)).astimezone(UTC)
    return cron.next_fire_times(schedule.cron, schedule.timezone, current, count)


def parse_time(text: str, field: str, zone: ZoneInfo) -> datetime:
    """ISO-8601; a time without an offset is read in the schedule's time zone."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(field, f"{text!r} is not an ISO-8601 time (e.g. 2026-11-28T09:00:00Z)") from None
    if not FIRST_SUPPORTED_YEAR <= parsed.year <= LAST_SUPPORTED_YEAR:
        raise UserError(field, f"{text!r} is outside the years {FIRST_SUPPORTED_YEAR}-{LAST_SUPPORTED_YEAR}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def _fire_times_up_to(schedule: Schedule, start: datetime, end: datetime, limit: int) -> list[datetime]:
    """The fire times in [start, end], computed in growing spans and stopped past `limit`.

    A range of a century of every-minute fire times is refused at once instead of computed.
    """
    times: list[datetime] = []
    chunk_start, span = start, timedelta(days=1)
    while chunk_start <= end and len(times) <= limit:
        chunk_end = end if end - chunk_start <= span else chunk_start + span
        times.extend(cron.fire_times(schedule.cron, schedule.timezone, chunk_start, chunk_end))
        chunk_start, span = chunk_end + timedelta(microseconds=1), span * 2
    return times


@dataclass(frozen=True)
class BackfillResult:
    fire_times: int
    sent: int
    already_ran: int


def backfill_schedule(
    session: Session, queue: Queue, name: str, start_text: str, end_text: str, now: datetime | None = None
) -> BackfillResult:
    """Enqueue every fire time in [start, end], whatever the catch-up window says.

    Backfill messages share the scheduled run's dedup key, so a fire time that already ran is
    never run again: it is skipped here, and the spawner absorbs any race.
    """
    schedule = get_schedule(session, name)
    zone = cron.validate_timezone(schedule.timezone)
    start = parse_time(start_text, "from", zone)
    end = parse_time(end_text, "to", zone)
    if end < start:
        raise UserError("to", "is before --from")
    current = (now or datetime.now(UTC)).astimezone(UTC)
    if end > current:
        # A future fire time enqueued now would run early and take the scheduled run's place.
        raise UserError("to", f"is in the future; backfill runs past fire times (up to {current:%Y-%m-%dT%H:%M:%SZ})")
    times = _fire_times_up_to(schedule, start, end, MAX_BACKFILL_FIRE_TIMES)
    if len(times) > MAX_BACKFILL_FIRE_TIMES:
        limit = MAX_BACKFILL_FIRE_TIMES
        raise UserError("to", f"the range holds more than {limit} fire times; at most {limit} per backfill")
    keys = {schedule_dedup_key(schedule.id, t): t for t in times}
    existing = set(session.scalars(select(Execution.dedup_key).where(Execution.dedup_key.in_(list(keys)))))
    to_send = [t for key, t in keys.items() if key not in existing]
    messages = [
        OutgoingMessage(body=schedule_message(schedule, t, Trigger.BACKFILL).to_json()) for t in to_send
    ]
    sent = queue.send_batch(messages)
    return BackfillResult(fire_times=len(times), sent=sent, already_ran=len(existing))


def schedule_summary(schedule: Schedule) -> dict[str, Any]:
    return {
        "id": schedule.id,
        "name": schedule.name,
        "workflow": schedule.workflow.name,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "enabled": schedule.enabled,
        "catchup": schedule.catchup,
        "catchup_window_seconds": schedule.catchup_window_seconds,
        "overlap": schedule.overlap,
        "jitter_seconds": schedule.jitter_seconds,
        "input": schedule.input,
        "next_run_at": schedule.next_run_at if schedule.enabled else None,
        "last_dispatched_at": schedule.last_dispatched_at,
        "created_at": schedule.created_at,
    }
