"""The fire-time ledger: one record per fire time a schedule had and what became of it.

Written in the same transaction as the decision it records (the dispatcher's schedule advance,
a backfill, a resume, an edit, the spawner's overlap decision), so the ledger and what happened
never disagree. Every write goes through `record_fire_times`: the one place a notification
feature hooks to announce `missed` fire times (entries with decision `dropped`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from services.core.db.models import FireDecision, FireReason, FireTime

PRUNE_BATCH_SIZE = 1000
PRUNE_MAX_BATCHES = 10
INSERT_CHUNK_ROWS = 1000  # 8 parameters a row, well under PostgreSQL's 65535


@dataclass(frozen=True)
class FireTimeEntry:
    """One decision about one fire time."""

    schedule_id: uuid.UUID
    fire_time: datetime
    decision: FireDecision
    reason: FireReason | None = None
    trigger: str | None = None
    dedup_key: str | None = None
    execution_id: uuid.UUID | None = None


def delete_fire_times(session: Session, schedule_ids: Sequence[uuid.UUID]) -> None:
    """Delete the ledger of schedules being deleted (the ledger has no foreign key to cascade)."""
    session.execute(delete(FireTime).where(FireTime.schedule_id.in_(schedule_ids)))


def record_fire_times(session: Session, entries: Sequence[FireTimeEntry], decided_at: datetime | None = None) -> None:
    """Append entries to the ledger (in the caller's transaction)."""
    if not entries:
        return
    when = decided_at or datetime.now(UTC)
    rows = [
        {
            "schedule_id": e.schedule_id,
            "fire_time": e.fire_time,
            "decision": e.decision.value,
            "reason": e.reason.value if e.reason else None,
            "trigger": e.trigger,
            "dedup_key": e.dedup_key,
            "execution_id": e.execution_id,
            "decided_at": when,
        }
        for e in entries
    ]
    # Multi-row INSERTs: one round trip per chunk (a tick records a row per fire time).
    for start in range(0, len(rows), INSERT_CHUNK_ROWS):
        session.execute(insert(FireTime.__table__).values(rows[start : start + INSERT_CHUNK_ROWS]))


COPY_COLUMNS = "schedule_id, fire_time, decision, reason, trigger, dedup_key, decided_at"


def copy_fire_times(cursor: Any, lines: Sequence[str]) -> None:
    """Append many entries with one COPY (the dispatcher's bulk path), in the cursor's transaction.

    `cursor` is a psycopg cursor on the session's connection. Each line is one entry in COPY
    text format, newline-terminated: the `COPY_COLUMNS` tab-separated, `\\N` for NULL. The
    dispatcher formats them itself (ids, ISO times, enum values and dedup keys need no
    escaping): one string per entry is several times cheaper than adapting a tuple of values.
    """
    if not lines:
        return
    with cursor.copy(f"COPY fire_times ({COPY_COLUMNS}) FROM STDIN") as copy:
        copy.write("".join(lines))


def record_fire_time(
    session: Session,
    schedule_id: uuid.UUID,
    fire_time: datetime,
    decision: FireDecision,
    reason: FireReason | None = None,
    trigger: str | None = None,
    dedup_key: str | None = None,
    execution_id: uuid.UUID | None = None,
    decided_at: datetime | None = None,
) -> None:
    """Append one entry; see `record_fire_times`."""
    entry = FireTimeEntry(schedule_id, fire_time, decision, reason, trigger, dedup_key, execution_id)
    record_fire_times(session, [entry], decided_at)


#: What a `missed` notification says about each reason.
_REASON_TEXT: dict[FireReason, str] = {
    FireReason.OUTSIDE_WINDOW: "older than the catch-up window",
    FireReason.CATCHUP_NONE: "missed, and catchup is none",
    FireReason.SUPERSEDED_LATEST: "missed, and catchup latest runs only the most recent missed time",
    FireReason.PAUSED: "the schedule was paused",
    FireReason.EDITED: "the schedule was edited before it ran",
    FireReason.OVERLAP_SKIP: "skipped: the previous run was still active",
    FireReason.OVERLAP_REPLACE: "cancelled by a newer run",
    FireReason.BEFORE_START: "before the schedule's start",
    FireReason.AFTER_END: "after the schedule's end",
}


def describe_reason(reason: FireReason) -> str:
    return _REASON_TEXT[reason]


def prune_fire_times(session: Session, now: datetime, days: int, batch_size: int = PRUNE_BATCH_SIZE) -> int:
    """Delete at most one batch of entries decided more than `days` ago; returns how many."""
    cutoff = now - timedelta(days=days)
    ids = select(FireTime.id).where(FireTime.decided_at < cutoff).order_by(FireTime.id).limit(batch_size)
    result = session.execute(delete(FireTime).where(FireTime.id.in_(ids.scalar_subquery())))
    return int(result.rowcount or 0)


def fire_time_history(
    session: Session, schedule_id: uuid.UUID, start: datetime | None, end: datetime | None, limit: int
) -> list[FireTime]:
    """Ledger entries of one schedule, newest fire time first."""
    query = select(FireTime).where(FireTime.schedule_id == schedule_id)
    if start is not None:
        query = query.where(FireTime.fire_time >= start)
    if end is not None:
        query = query.where(FireTime.fire_time <= end)
    return list(session.scalars(query.order_by(FireTime.fire_time.desc(), FireTime.id.desc()).limit(limit)))
