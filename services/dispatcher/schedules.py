"""Schedules: create, edit in place, pause, resume, delete, preview, history and backfill.

The service behind `wfctl schedules` and `wfctl apply`. A schedule fires on one or more cron
expressions, on an interval, or once (`at`), optionally bounded by `start_at`/`end_at`
(docs/schedules.md). Edits keep the schedule's id, and so its dedup keys.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.core import audit, cron
from services.core.db.models import (
    TERMINAL_STATUSES,
    Catchup,
    Execution,
    ExecutionStatus,
    FireDecision,
    FireReason,
    Overlap,
    Schedule,
    Trigger,
)
from services.core.errors import ConflictError, NotFoundError, UserError
from services.core.inputs import check_input
from services.core.ledger import FireTimeEntry, delete_fire_times, fire_time_history, record_fire_times
from services.core.messages import schedule_dedup_key, utc_iso
from services.core.queue import OutgoingMessage, Queue
from services.core.workflows import get_workflow
from services.dispatcher import timing
from services.dispatcher.tick import schedule_message
from services.notify.rules import validate_settings

MAX_JITTER_SECONDS = 900
MAX_BACKFILL_FIRE_TIMES = 10_000
MAX_CATCHUP_WINDOW_SECONDS = 2**31 - 1  # the column is a 32-bit integer
MAX_CRON_EXPRESSIONS = 20
MAX_INTERVAL_SECONDS = 2**31 - 1
# A resume or an edit records at most this many skipped fire times in the ledger (the latest),
# looking back at most LEDGER_LOOKBACK.
MAX_LEDGER_DROPS = 1000
LEDGER_LOOKBACK = timedelta(days=7)
# Cron math needs a few hours of room either side of a time (DST margins, time zone offsets), and
# a search for the next fire time reaches up to 68 years past a bound (the longest `every`; a cron
# search stops after HORIZON_YEARS): the calendar ends in 9999.
FIRST_SUPPORTED_YEAR, LAST_SUPPORTED_YEAR = 2, 9900
#: Matched whole (`fullmatch`): `$` in `re.match` would accept a name ending in a newline.
NAME_PATTERN = r"[a-z0-9]([a-z0-9._-]{0,251}[a-z0-9])?"
#: Longest cron expression accepted (the column holds several, separated by "; ").
MAX_CRON_LENGTH = 255
MAX_CRON_COLUMN = 1024  # the schedules.cron column
CRON_SEPARATOR = "; "
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
# Columns whose change moves the fire times: the next one is recomputed from the edit's instant.
TIMING_COLUMNS = ("cron", "timezone", "interval_seconds", "run_at", "start_at", "end_at")
# Column names as users write them (the keys of a `kind: Schedule` document).
FIELD_NAMES = {"workflow_id": "workflow", "interval_seconds": "every", "run_at": "at", "enabled": "paused"}


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule as given by a user, before validation.

    Exactly one of `cron` (one expression or several), `every` (``90m``, ``1h30m`` or seconds)
    and `at` (an ISO-8601 instant) is set. Times without an offset are read in `timezone`.
    `enabled` None leaves the current state as it is (declarative apply without `paused`).
    """

    name: str
    workflow: str
    cron: str | Sequence[str] | None = None
    every: str | int | None = None
    at: str | datetime | None = None
    start_at: str | datetime | None = None
    end_at: str | datetime | None = None
    timezone: str = "UTC"
    input: dict[str, Any] | None = None
    catchup: str = Catchup.LATEST.value
    catchup_window_seconds: int = 86400
    overlap: str = Overlap.ALLOW.value
    jitter_seconds: int = 0
    enabled: bool | None = True
    #: Notification rules added to the workflow's: `{notify: [...], late_after, long_running_after}`.
    notify: Any = None


SPEC_FIELDS = frozenset(f.name for f in fields(ScheduleSpec))


def _choice(field: str, value: str, allowed: type[Catchup] | type[Overlap]) -> str:
    try:
        return allowed(value).value
    except ValueError:
        options = ", ".join(v.value for v in allowed)
        raise UserError(field, f"{value!r} is not one of {options}") from None


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        shown = name[:80] if isinstance(name, str) else name
        raise UserError("name", f"{shown!r} must be lowercase letters, digits, '-', '_' or '.'")


def parse_interval(value: str | int, field: str = "every") -> int:
    """`90m`, `1h30m`, `2h`, `1d` or a number of seconds; a whole number of minutes, >= 1m."""
    if isinstance(value, bool):
        raise UserError(field, f"{value!r} is not a duration (e.g. 90m, 1h30m, 2h)")
    if isinstance(value, int):
        seconds = value
    else:
        text = str(value).strip().lower()
        match = _DURATION.match(text)
        if text.isdigit():
            seconds = int(text)
        elif match and text:
            d, h, m, s = (int(g or 0) for g in match.groups())
            seconds = ((d * 24 + h) * 60 + m) * 60 + s
        else:
            raise UserError(field, f"{value!r} is not a duration (e.g. 90m, 1h30m, 2h)")
    if seconds < 60 or seconds % 60:
        raise UserError(field, "must be a whole number of minutes, at least 1m")
    if seconds > MAX_INTERVAL_SECONDS:
        raise UserError(field, f"must be at most {MAX_INTERVAL_SECONDS} seconds")
    return seconds


def format_interval(seconds: int) -> str:
    """The shortest `1d2h30m` form of a number of seconds (whole minutes)."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    text = "".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n)
    return text or "0m"


def parse_time(text: str | datetime, field: str, zone: ZoneInfo) -> datetime:
    """ISO-8601 (or a datetime, as YAML gives); a time without an offset is read in `zone`."""
    if isinstance(text, datetime):
        parsed = text
    else:
        try:
            parsed = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        except ValueError:
            raise UserError(field, f"{text!r} is not an ISO-8601 time (e.g. 2026-11-28T09:00:00Z)") from None
    if not FIRST_SUPPORTED_YEAR <= parsed.year <= LAST_SUPPORTED_YEAR:
        raise UserError(field, f"{text!r} is outside the years {FIRST_SUPPORTED_YEAR}-{LAST_SUPPORTED_YEAR}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    # Whole seconds, as messages, dedup keys and the ledger write fire times: an `every` anchored
    # at 09:00:00.5 would otherwise fire at instants no message can name.
    return parsed.astimezone(UTC).replace(microsecond=0)


def _cron_list(value: str | Sequence[str]) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    expressions: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise UserError("cron", f"{item!r} is not a cron expression")
        for part in item.split(";"):
            if len(" ".join(part.split())) > MAX_CRON_LENGTH:
                raise UserError("cron", f"is longer than {MAX_CRON_LENGTH} characters")
            normalised = cron.validate_expression(part)
            if normalised not in expressions:
                expressions.append(normalised)
    if not expressions:
        raise UserError("cron", "give at least one expression")
    if len(expressions) > MAX_CRON_EXPRESSIONS:
        raise UserError("cron", f"at most {MAX_CRON_EXPRESSIONS} expressions per schedule")
    if len(CRON_SEPARATOR.join(expressions)) > MAX_CRON_COLUMN:
        raise UserError("cron", f"the expressions together are longer than {MAX_CRON_COLUMN} characters")
    return expressions


def _kind(spec: ScheduleSpec) -> str:
    given = [k for k in ("cron", "every", "at") if getattr(spec, k) not in (None, "", [], ())]
    if not given:
        raise UserError("cron", "give one of cron, every or at")
    if len(given) > 1:
        raise UserError(given[1], f"cannot be combined with {given[0]}; a schedule has one kind")
    return given[0]


def desired_columns(
    session: Session, spec: ScheduleSpec, now: datetime, current: Schedule | None = None
) -> dict[str, Any]:
    """Validate every field and return the schedule's column values; writes nothing.

    `current` is the schedule being edited: an `at` or `end_at` it already has may lie in the
    past (re-applying an unchanged file is not an error); a new one may not.
    """
    _check_name(spec.name)
    if not isinstance(spec.workflow, str) or not spec.workflow:
        raise UserError("workflow", "must be the name of a workflow")
    if not isinstance(spec.timezone, str):
        raise UserError("timezone", f"{spec.timezone!r} is not an IANA time zone (e.g. Europe/Berlin)")
    kind = _kind(spec)
    zone = cron.validate_timezone(spec.timezone)
    start = parse_time(spec.start_at, "start", zone) if spec.start_at not in (None, "") else None
    end = parse_time(spec.end_at, "end", zone) if spec.end_at not in (None, "") else None
    if start is not None and end is not None and end < start:
        raise UserError("end", "is before start")
    if end is not None and end <= now and (current is None or current.end_at != end):
        raise UserError("end", f"is in the past (now is {utc_iso(now)})")
    expressions = _cron_list(spec.cron) if kind == "cron" else []  # type: ignore[arg-type]
    interval = parse_interval(spec.every) if kind == "every" else None  # type: ignore[arg-type]
    run_at = None
    if kind == "at":
        run_at = parse_time(spec.at, "at", zone).replace(second=0, microsecond=0)  # type: ignore[arg-type]
        if run_at <= now and (current is None or current.run_at != run_at):
            raise UserError("at", f"is in the past (now is {utc_iso(now)})")
        if (start is not None and run_at < start) or (end is not None and run_at > end):
            raise UserError("at", "is outside start/end")
    catchup = _choice("catchup", spec.catchup, Catchup)
    overlap = _choice("overlap", spec.overlap, Overlap)
    if not isinstance(spec.jitter_seconds, int) or not 0 <= spec.jitter_seconds <= MAX_JITTER_SECONDS:
        raise UserError("jitter", f"{spec.jitter_seconds} is outside 0-{MAX_JITTER_SECONDS} seconds")
    window = spec.catchup_window_seconds
    if not isinstance(window, int) or window < 0:
        raise UserError("catchup-window", "must be zero or more seconds")
    if window > MAX_CATCHUP_WINDOW_SECONDS:
        raise UserError("catchup-window", f"must be at most {MAX_CATCHUP_WINDOW_SECONDS} seconds")
    payload = check_input(spec.input if spec.input is not None else {})
    notify = validate_settings(spec.notify, "notify")
    workflow = get_workflow(session, spec.workflow)
    columns: dict[str, Any] = {
        "workflow_id": workflow.id,
        "cron": CRON_SEPARATOR.join(expressions) or None,
        "interval_seconds": interval,
        "run_at": run_at,
        "start_at": start,
        "end_at": end,
        "timezone": spec.timezone,
        "input": payload,
        "catchup": catchup,
        "catchup_window_seconds": window,
        "overlap": overlap,
        "jitter_seconds": spec.jitter_seconds,
        "notify": notify,
    }
    if spec.enabled is not None:
        columns["enabled"] = bool(spec.enabled)
    return columns


def _passed_fire_times(schedule: Schedule, now: datetime) -> list[datetime]:
    """Fire times from `next_run_at` to `now` that were never dispatched (latest, bounded)."""
    if schedule.next_run_at is None or schedule.next_run_at > now:
        return []
    start = max(schedule.next_run_at, now - LEDGER_LOOKBACK)
    return timing.fire_times(timing.Timing.of(schedule), start, now)[-MAX_LEDGER_DROPS:]


def _record_dropped(
    session: Session, schedule: Schedule, times: list[datetime], reason: FireReason, now: datetime
) -> None:
    record_fire_times(
        session, [FireTimeEntry(schedule.id, t, FireDecision.DROPPED, reason) for t in times], decided_at=now
    )


def _reschedule(schedule: Schedule, now: datetime) -> None:
    """Next fire time strictly after `now`; a schedule with none left is completed."""
    schedule.next_run_at = timing.next_fire_time(timing.Timing.of(schedule), now)
    schedule.completed_at = None if schedule.next_run_at is not None else now


def assign_columns(session: Session, schedule: Schedule, columns: dict[str, Any], now: datetime) -> list[str]:
    """Apply validated columns to a schedule (new or existing); returns the changed fields, named
    as in a schedule document (`every`, not `interval_seconds`).

    A change of timing recomputes the next fire time from `now`; fire times that were due but
    not yet dispatched are recorded in the ledger as dropped (`edited`) and never fire.
    """
    is_new = schedule.id is None
    changed = [k for k, v in columns.items() if is_new or getattr(schedule, k) != v]
    timing_changed = is_new or any(k in TIMING_COLUMNS for k in changed)
    if not is_new and schedule.enabled and timing_changed:
        _record_dropped(session, schedule, _passed_fire_times(schedule, now), FireReason.EDITED, now)
    elif not is_new and not schedule.enabled and columns.get("enabled"):  # resumed by an apply
        _record_dropped(session, schedule, _passed_fire_times(schedule, now), FireReason.PAUSED, now)
    for key in changed:
        setattr(schedule, key, columns[key])
    if columns["interval_seconds"] is None:
        schedule.anchor_at = None
    elif is_new or {"interval_seconds", "start_at"} & set(changed) or schedule.anchor_at is None:
        schedule.anchor_at = columns["start_at"] or now.replace(second=0, microsecond=0)
    # A pause leaves next_run_at where it is, as `pause_schedule` does: the fire times due but
    # not yet sent are then recorded (`paused`) by the resume, not lost by moving past them.
    if timing_changed or ("enabled" in changed and schedule.enabled):
        _reschedule(schedule, now)
    if changed and not is_new:
        schedule.updated_at = now
    return [] if is_new else [FIELD_NAMES.get(c, c) for c in changed]


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def create_schedule(
    session: Session, spec: ScheduleSpec, now: datetime | None = None, *, actor: str = audit.SYSTEM_ACTOR
) -> Schedule:
    """Validate every field first, then insert; nothing is written when any field is bad."""
    current = _now(now)
    columns = desired_columns(session, spec, current)
    if session.scalar(select(Schedule.id).where(Schedule.name == spec.name)) is not None:
        raise ConflictError("name", f"a schedule named {spec.name!r} already exists")
    columns.setdefault("enabled", True)
    schedule = Schedule(name=spec.name)
    assign_columns(session, schedule, columns, current)
    session.add(schedule)
    session.flush()
    audit.record(
        session, actor, "schedule.create", "schedule", schedule.name,
        {"workflow": spec.workflow, "when": timing_text(schedule), "timezone": schedule.timezone,
         "enabled": schedule.enabled},
    )
    return schedule


def spec_of(schedule: Schedule) -> ScheduleSpec:
    """The spec a schedule was made from (for edits: change some fields, keep the rest)."""
    return ScheduleSpec(
        name=schedule.name,
        workflow=schedule.workflow.name,
        cron=schedule.cron_expressions or None,
        every=schedule.interval_seconds,
        at=schedule.run_at,
        start_at=schedule.start_at,
        end_at=schedule.end_at,
        timezone=schedule.timezone,
        input=schedule.input,
        catchup=schedule.catchup,
        catchup_window_seconds=schedule.catchup_window_seconds,
        overlap=schedule.overlap,
        jitter_seconds=schedule.jitter_seconds,
        enabled=None,
        notify=schedule.notify or None,
    )


def edited_spec(schedule: Schedule, changes: dict[str, Any]) -> ScheduleSpec:
    """The schedule's spec with `changes` (spec field names; None values are ignored).

    Giving a kind (`cron`, `every` or `at`) replaces the current kind; giving two is an error.
    """
    given = {k: v for k, v in changes.items() if v is not None}
    unknown = set(given) - SPEC_FIELDS
    if unknown:
        raise UserError(sorted(unknown)[0], "is not a schedule field")
    kinds = [k for k in ("cron", "every", "at") if k in given]
    if len(kinds) > 1:
        raise UserError(kinds[1], f"cannot be combined with {kinds[0]}; a schedule has one kind")
    base = spec_of(schedule)
    if kinds:
        base = replace(base, cron=None, every=None, at=None)
    return replace(base, **given)


def update_schedule(
    session: Session,
    name: str,
    changes: dict[str, Any],
    now: datetime | None = None,
    *,
    actor: str = audit.SYSTEM_ACTOR,
) -> tuple[Schedule, list[str]]:
    """Edit a schedule in place (same id, same dedup keys); returns it and the changed fields."""
    current = _now(now)
    schedule = get_schedule(session, name, for_update=True)
    columns = desired_columns(session, edited_spec(schedule, changes), current, schedule)
    changed = assign_columns(session, schedule, columns, current)
    if changed:
        audit.record(session, actor, "schedule.update", "schedule", name, {"changed": changed})
    return schedule, changed


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


def pause_schedule(session: Session, name: str, *, actor: str = audit.SYSTEM_ACTOR) -> Schedule:
    schedule = get_schedule(session, name, for_update=True)
    if schedule.enabled:
        schedule.enabled = False
        schedule.updated_at = datetime.now(UTC)
        audit.record(session, actor, "schedule.pause", "schedule", name)
    return schedule


def resume_schedule(
    session: Session, name: str, now: datetime | None = None, *, actor: str = audit.SYSTEM_ACTOR
) -> Schedule:
    """Resume from now: fire times that passed while paused are recorded as dropped, not run."""
    schedule = get_schedule(session, name, for_update=True)
    current = _now(now)
    if not schedule.enabled:
        _record_dropped(session, schedule, _passed_fire_times(schedule, current), FireReason.PAUSED, current)
        schedule.enabled = True
        _reschedule(schedule, current)
        schedule.updated_at = current
        next_run = utc_iso(schedule.next_run_at) if schedule.next_run_at else None
        audit.record(session, actor, "schedule.resume", "schedule", name, {"next_run_at": next_run})
    return schedule


def delete_schedule(session: Session, name: str, *, actor: str = audit.SYSTEM_ACTOR) -> None:
    schedule = get_schedule(session, name, for_update=True)
    audit.record(session, actor, "schedule.delete", "schedule", name)
    delete_schedules(session, [schedule.id])


def delete_schedules(session: Session, schedule_ids: Sequence[uuid.UUID]) -> None:
    """Delete schedules with their fire-time ledger (which has no foreign key to cascade)."""
    delete_fire_times(session, schedule_ids)
    session.execute(delete(Schedule).where(Schedule.id.in_(schedule_ids)))


def preview_fire_times(schedule: Schedule, count: int, after: datetime | None = None) -> list[datetime]:
    """The next `count` fire times of any kind (fewer when the schedule ends)."""
    if not 1 <= count <= 1000:
        raise UserError("count", "must be between 1 and 1000")
    return timing.next_fire_times(timing.Timing.of(schedule), _now(after), count)


def schedule_history(
    session: Session, name: str, start_text: str | None, end_text: str | None, limit: int = 1000
) -> list[dict[str, Any]]:
    """The fire-time ledger of one schedule, newest first, with each sent time's execution."""
    schedule = get_schedule(session, name)
    zone = cron.validate_timezone(schedule.timezone)
    start = parse_time(start_text, "from", zone) if start_text else None
    end = parse_time(end_text, "to", zone) if end_text else None
    if start is not None and end is not None and end < start:
        raise UserError("to", "is before --from")
    if not 1 <= limit <= 100_000:
        raise UserError("limit", "must be between 1 and 100000")
    entries = fire_time_history(session, schedule.id, start, end, limit)
    keys = [e.dedup_key for e in entries if e.dedup_key]
    executions = {
        key: (execution_id, status)
        for key, execution_id, status in session.execute(
            select(Execution.dedup_key, Execution.id, Execution.status).where(Execution.dedup_key.in_(keys))
        )
    } if keys else {}
    rows = []
    for entry in entries:
        execution_id, status = executions.get(entry.dedup_key or "", (entry.execution_id, None))
        rows.append(
            {
                "fire_time": entry.fire_time,
                "local": entry.fire_time.astimezone(zone).isoformat(),
                "decision": entry.decision,
                "reason": entry.reason,
                "trigger": entry.trigger,
                "dedup_key": entry.dedup_key,
                "execution_id": execution_id,
                "status": status,
                "decided_at": entry.decided_at,
            }
        )
    return rows


class Reprocess:
    """Which fire times a backfill runs (again)."""

    MISSING = "missing"  # never ran (today's behaviour, and the default)
    FAILED = "failed"  # their latest run failed or timed out
    ALL = "all"  # every one, except those with a run still in progress

    CHOICES = (MISSING, FAILED, ALL)


FAILED_STATUSES = frozenset({ExecutionStatus.FAILED.value, ExecutionStatus.TIMED_OUT.value})


def reprocess_dedup_key(schedule_id: Any, fire_time: datetime, generation: int) -> str:
    """The key of the `generation`-th re-run of a fire time (1 for the first re-run).

    Deterministic: running the same backfill twice before the spawner inserts the first re-run
    reuses the key, so it is absorbed; once inserted, the next backfill counts one more run.
    """
    return f"reprocess:{schedule_id}:{utc_iso(fire_time)}:{generation}"


@dataclass(frozen=True)
class BackfillResult:
    fire_times: int
    sent: int
    already_ran: int
    reprocessed: int = 0
    outside_bounds: int = 0


def _runs_by_fire_time(session: Session, schedule: Schedule, times: list[datetime]) -> dict[datetime, list[Execution]]:
    """Every execution of these fire times (scheduled, backfilled, retried, reprocessed), oldest first."""
    runs: dict[datetime, list[Execution]] = {t: [] for t in times}
    if not times:
        return runs
    rows = session.scalars(
        select(Execution)
        .where(Execution.schedule_id == schedule.id, Execution.scheduled_for.in_(times))
        .order_by(Execution.created_at, Execution.id)
    )
    for execution in rows:
        if execution.scheduled_for in runs:
            runs[execution.scheduled_for].append(execution)
    return runs


def backfill_schedule(
    session: Session,
    queue: Queue,
    name: str,
    start_text: str,
    end_text: str,
    now: datetime | None = None,
    reprocess: str = Reprocess.MISSING,
    *,
    actor: str = audit.SYSTEM_ACTOR,
) -> BackfillResult:
    """Enqueue the fire times in [start, end] chosen by `reprocess`, whatever the window says.

    * `missing`: fire times that never ran, with the scheduled run's dedup key, so a fire time
      that already ran is never run again (the spawner absorbs any race).
    * `failed`: also re-run fire times whose latest run failed or timed out;
    * `all`: also re-run every fire time whose runs are all finished.
    Re-runs get their own dedup key (`reprocess_dedup_key`). Fire times outside the schedule's
    start/end are not run and are recorded in the ledger (`before_start`, `after_end`).
    """
    if reprocess not in Reprocess.CHOICES:
        raise UserError("reprocess", f"{reprocess!r} is not one of {', '.join(Reprocess.CHOICES)}")
    schedule = get_schedule(session, name)
    zone = cron.validate_timezone(schedule.timezone)
    start = parse_time(start_text, "from", zone)
    end = parse_time(end_text, "to", zone)
    if end < start:
        raise UserError("to", "is before --from")
    current = _now(now)
    if end > current:
        # A future fire time enqueued now would run early and take the scheduled run's place.
        raise UserError("to", f"is in the future; backfill runs past fire times (up to {utc_iso(current)})")
    spec = timing.Timing.of(schedule)
    times = timing.fire_times_limited(spec.unbounded(), start, end, MAX_BACKFILL_FIRE_TIMES)
    if len(times) > MAX_BACKFILL_FIRE_TIMES:
        limit = MAX_BACKFILL_FIRE_TIMES
        raise UserError("to", f"the range holds more than {limit} fire times; at most {limit} per backfill")
    ledger: list[FireTimeEntry] = []
    in_bounds: list[datetime] = []
    for t in times:
        if schedule.start_at is not None and t < schedule.start_at:
            ledger.append(FireTimeEntry(schedule.id, t, FireDecision.DROPPED, FireReason.BEFORE_START))
        elif schedule.end_at is not None and t > schedule.end_at:
            ledger.append(FireTimeEntry(schedule.id, t, FireDecision.DROPPED, FireReason.AFTER_END))
        else:
            in_bounds.append(t)
    keys = {schedule_dedup_key(schedule.id, t): t for t in in_bounds}
    existing = set(session.scalars(select(Execution.dedup_key).where(Execution.dedup_key.in_(list(keys)))))
    runs = _runs_by_fire_time(session, schedule, in_bounds) if reprocess != Reprocess.MISSING else {}
    outgoing: list[OutgoingMessage] = []
    reprocessed = 0
    for key, t in keys.items():
        if key not in existing:
            message = schedule_message(schedule, t, Trigger.BACKFILL)
        else:
            history = runs.get(t, [])
            if not history or any(e.status not in TERMINAL_STATUSES for e in history):
                continue
            if reprocess == Reprocess.FAILED and history[-1].status not in FAILED_STATUSES:
                continue
            if reprocess == Reprocess.MISSING:
                continue
            message = replace(
                schedule_message(schedule, t, Trigger.BACKFILL),
                dedup_key=reprocess_dedup_key(schedule.id, t, len(history)),
            )
            reprocessed += 1
        outgoing.append(OutgoingMessage(body=message.to_json()))
        ledger.append(
            FireTimeEntry(
                schedule.id, t, FireDecision.SENT, trigger=Trigger.BACKFILL.value, dedup_key=message.dedup_key
            )
        )
    sent = queue.send_batch(outgoing)
    record_fire_times(session, ledger, decided_at=current)
    audit.record(
        session, actor, "schedule.backfill", "schedule", name,
        {"from": utc_iso(start), "to": utc_iso(end), "reprocess": str(reprocess), "fire_times": len(in_bounds),
         "sent": sent, "already_ran": len(existing), "reprocessed": reprocessed},
    )
    return BackfillResult(
        fire_times=len(in_bounds),
        sent=sent,
        already_ran=len(existing),
        reprocessed=reprocessed,
        outside_bounds=len(times) - len(in_bounds),
    )


def schedule_state(schedule: Schedule) -> str:
    if schedule.completed_at is not None and schedule.next_run_at is None:
        return "completed"
    return "active" if schedule.enabled else "paused"


def schedule_summary(schedule: Schedule) -> dict[str, Any]:
    return {
        "id": schedule.id,
        "name": schedule.name,
        "workflow": schedule.workflow.name,
        "kind": schedule.kind,
        "cron": schedule.cron,
        "crons": schedule.cron_expressions,
        "every": format_interval(schedule.interval_seconds) if schedule.interval_seconds else None,
        "at": schedule.run_at,
        "start_at": schedule.start_at,
        "end_at": schedule.end_at,
        "timezone": schedule.timezone,
        "enabled": schedule.enabled,
        "state": schedule_state(schedule),
        "catchup": schedule.catchup,
        "catchup_window_seconds": schedule.catchup_window_seconds,
        "overlap": schedule.overlap,
        "jitter_seconds": schedule.jitter_seconds,
        "input": schedule.input,
        "notify": schedule.notify or {},
        "next_run_at": schedule.next_run_at if schedule.enabled else None,
        "last_dispatched_at": schedule.last_dispatched_at,
        "completed_at": schedule.completed_at,
        "created_at": schedule.created_at,
    }


def timing_text(schedule: Schedule) -> str:
    """One-line description of when a schedule fires (for tables and messages)."""
    if schedule.interval_seconds is not None:
        return f"every {format_interval(schedule.interval_seconds)}"
    if schedule.run_at is not None:
        return f"at {utc_iso(schedule.run_at)}"
    return schedule.cron or ""

