"""The audit trail: who changed what, when (SPEC §9).

Every service function that changes something calls `record` with the session it changes things
in, so the audit row commits or rolls back with the change itself: there is never a change
without its row, nor a row for a change that did not happen. Details carry names and counts,
never a secret.
"""

from __future__ import annotations

import getpass
import os
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.db.models import AuditEvent
from services.core.errors import UserError

#: The actor of changes made by code paths without a person behind them (examples, tests).
SYSTEM_ACTOR = "system"
MAX_LIST = 1000
#: What changes are recorded against (`target_kind`).
TARGET_KINDS = frozenset({"workflow", "schedule", "execution", "integration", "channel", "pool", "token", "dlq"})
MAX_ID = 2**63 - 1  # the id column is a bigint


def cli_actor() -> str:
    """`cli:<os user>`: changes made by wfctl directly against the database."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container with an arbitrary uid)
        user = os.environ.get("USER") or f"uid{os.getuid()}"
    return f"cli:{user}"


def token_actor(token_name: str) -> str:
    """The actor of a change made with an API token (API, console, remote wfctl)."""
    return f"token:{token_name}"


def record(
    session: Session,
    actor: str,
    action: str,
    target_kind: str,
    target: str,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one audit row to the caller's transaction (flushed, so its id is known)."""
    event = AuditEvent(
        actor=actor[:253], action=action, target_kind=target_kind, target=str(target)[:253], details=details
    )
    session.add(event)
    session.flush()
    return event


def list_events(
    session: Session,
    target_kind: str | None = None,
    target: str | None = None,
    actor: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[AuditEvent]:
    """Newest first; `before_id` pages backwards (ids only grow, so pages are stable)."""
    if target_kind is not None and target_kind not in TARGET_KINDS:
        raise UserError("target_kind", f"{target_kind!r} is not one of {', '.join(sorted(TARGET_KINDS))}")
    if before_id is not None and not 1 <= before_id <= MAX_ID:
        raise UserError("before", f"must be an event id between 1 and {MAX_ID}")
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(max(1, min(limit, MAX_LIST)))
    if target_kind is not None:
        query = query.where(AuditEvent.target_kind == target_kind)
    if target is not None:
        query = query.where(AuditEvent.target == target)
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return list(session.scalars(query))


def event_row(event: AuditEvent) -> dict[str, Any]:
    at: datetime = event.at
    return {
        "id": event.id,
        "at": at,
        "actor": event.actor,
        "action": event.action,
        "target_kind": event.target_kind,
        "target": event.target,
        "details": event.details,
    }
