"""The dead-letter queue: park a message with its reason, list what is parked, send it back.

A parked message keeps its original body byte for byte and carries the reason as a message
attribute, so `wfctl dlq list` can say why and `wfctl dlq redrive` can resend it unchanged.
Listing and redriving never lose a message: listing only hides messages for a short while and
then makes them visible again; redriving sends first and deletes only what was sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from services.core import audit
from services.core.queue import OutgoingMessage, Queue, ReceivedMessage

REASON_ATTRIBUTE = "reason"
SOURCE_ATTRIBUTE = "source_message_id"
MAX_REASON_CHARS = 1000
#: How long listing hides a message: long enough to page through the queue, short if we crash.
LIST_VISIBILITY_SECONDS = 30
MAX_MESSAGES = 10_000


def dead_letter(dlq: Queue, message: ReceivedMessage, reason: str) -> None:
    """Send a copy of `message` with `reason` to the DLQ (the caller then deletes the original)."""
    dlq.send(
        OutgoingMessage(
            body=message.body,
            attributes={
                REASON_ATTRIBUTE: (reason or "unknown")[:MAX_REASON_CHARS],
                SOURCE_ATTRIBUTE: message.message_id,
            },
        )
    )


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    reason: str | None
    sent_at: datetime | None
    receive_count: int
    body: str

    def row(self, now: datetime) -> dict[str, Any]:
        age = int((now - self.sent_at).total_seconds()) if self.sent_at else None
        summary: dict[str, Any] = {}
        try:
            parsed = json.loads(self.body)
            if isinstance(parsed, dict):
                summary = {key: parsed.get(key) for key in ("dedup_key", "workflow_id", "trigger")}
        except ValueError:
            pass
        return {
            "message_id": self.message_id,
            "reason": self.reason or "(moved by SQS after too many receives)",
            "age_seconds": age,
            "receive_count": self.receive_count,
            "sent_at": self.sent_at,
            "dedup_key": summary.get("dedup_key"),
            "workflow_id": summary.get("workflow_id"),
            "body": self.body,
        }


def _as_dead_letter(message: ReceivedMessage) -> DeadLetter:
    sent = datetime.fromtimestamp(message.sent_at_ms / 1000, UTC) if message.sent_at_ms else None
    return DeadLetter(
        message_id=message.message_id,
        reason=message.attributes.get(REASON_ATTRIBUTE),
        sent_at=sent,
        receive_count=message.receive_count,
        body=message.body,
    )


def _receive_all(dlq: Queue, visibility_seconds: int, limit: int) -> Iterator[list[ReceivedMessage]]:
    """Batches until the queue shows nothing more (each message once: the ones seen are hidden)."""
    seen = 0
    while seen < limit:
        batch = dlq.receive(max_messages=10, wait_seconds=0, visibility_timeout=visibility_seconds)
        if not batch:
            return
        seen += len(batch)
        yield batch


def list_dead_letters(dlq: Queue, limit: int = MAX_MESSAGES) -> list[DeadLetter]:
    """Every message in the DLQ (up to `limit`), left in the DLQ and visible again afterwards."""
    received: dict[str, ReceivedMessage] = {}
    try:
        for batch in _receive_all(dlq, LIST_VISIBILITY_SECONDS, limit):
            for message in batch:
                received.setdefault(message.message_id, message)
    finally:
        for message in received.values():
            try:
                dlq.change_visibility(message.receipt_handle, 0)
            except Exception:  # it becomes visible anyway when the short timeout ends
                pass
    return sorted(
        (_as_dead_letter(m) for m in received.values()), key=lambda d: d.sent_at or datetime.min.replace(tzinfo=UTC)
    )


def redrive(dlq: Queue, work_queue: Queue, limit: int = MAX_MESSAGES) -> int:
    """Move every DLQ message back to the work queue, without its reason; returns how many.

    Send, then delete: a crash in between leaves a copy in both queues, which the spawner's
    dedup keys absorb; nothing is ever only in flight.
    """
    moved = 0
    for batch in _receive_all(dlq, LIST_VISIBILITY_SECONDS, limit):
        work_queue.send_batch([OutgoingMessage(body=message.body) for message in batch])
        failed = dlq.delete_batch([message.receipt_handle for message in batch])
        moved += len(batch) - len(failed)
    return moved


def redrive_recorded(session: Session, dlq: Queue, work_queue: Queue, actor: str) -> int:
    """`redrive`, with its audit row in `session` (the queues are not transactional, so the row
    records what actually moved)."""
    moved = redrive(dlq, work_queue)
    audit.record(session, actor, "dlq.redrive", "dlq", "dlq", {"moved": moved})
    return moved
