"""Concurrency pools: a named number of slots that every workflow with `pool: NAME` draws from.

A pool caps how many runs of all its workflows hold a slot (`starting` or `running`) at once;
the spawner keeps the others `queued`, oldest first (services.spawner.admission).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from services.core import audit
from services.core.db.models import SLOT_STATUSES, Execution, ExecutionStatus, Pool
from services.core.errors import UserError

NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,251}[a-z0-9])?$")
MAX_SLOTS = 10_000


def check_pool(name: str, slots: int) -> None:
    if not NAME_PATTERN.fullmatch(name):  # `$` in `match` would accept a trailing newline
        raise UserError("name", f"{name!r} is not a pool name (lowercase letters, digits, '-', '_', '.')")
    if not 1 <= slots <= MAX_SLOTS:
        raise UserError("slots", f"must be between 1 and {MAX_SLOTS}, got {slots}")


def set_pool(session: Session, name: str, slots: int, *, actor: str = audit.SYSTEM_ACTOR) -> bool:
    """Create the pool or change its slots; True when created. The caller commits."""
    check_pool(name, slots)
    existing = session.get(Pool, name)
    before = existing.slots if existing is not None else None
    session.execute(
        insert(Pool)
        .values(name=name, slots=slots)
        .on_conflict_do_update(index_elements=[Pool.name], set_={"slots": slots, "updated_at": datetime.now(UTC)})
    )
    if existing is None:
        audit.record(session, actor, "pool.create", "pool", name, {"slots": slots})
    elif before != slots:
        audit.record(session, actor, "pool.update", "pool", name, {"slots": slots, "was": before})
    return existing is None


def pool_exists(session: Session, name: str) -> bool:
    return session.scalar(select(Pool.name).where(Pool.name == name)) is not None


def list_pools(session: Session) -> list[dict[str, Any]]:
    """Every pool with its slots, the slots in use now and how many runs wait for one."""
    pools = list(session.scalars(select(Pool).order_by(Pool.name)))
    counts = dict(
        session.execute(
            select(Execution.pool, func.count())
            .where(Execution.pool.is_not(None), Execution.status.in_([str(s) for s in SLOT_STATUSES]))
            .group_by(Execution.pool)
        ).all()
    )
    waiting = dict(
        session.execute(
            select(Execution.pool, func.count())
            .where(Execution.pool.is_not(None), Execution.status == ExecutionStatus.QUEUED.value)
            .group_by(Execution.pool)
        ).all()
    )
    return [
        {
            "name": pool.name,
            "slots": pool.slots,
            "in_use": int(counts.get(pool.name, 0)),
            "queued": int(waiting.get(pool.name, 0)),
            "updated_at": pool.updated_at,
        }
        for pool in pools
    ]
