"""Manual runs (`wfctl run`): enqueue a `manual` message; the spawner creates the record."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.db.models import TERMINAL_STATUSES, Execution, Trigger
from services.core.inputs import check_input
from services.core.messages import RunMessage, manual_dedup_key
from services.core.queue import OutgoingMessage, Queue
from services.core.workflows import get_workflow


def trigger_manual_run(session: Session, queue: Queue, workflow_name: str, payload: dict[str, Any]) -> RunMessage:
    workflow = get_workflow(session, workflow_name)
    message = RunMessage(
        trigger=Trigger.MANUAL,
        dedup_key=manual_dedup_key(uuid.uuid4()),
        workflow_id=workflow.id,
        input=check_input(payload),
    )
    queue.send(OutgoingMessage(body=message.to_json()))
    return message


def wait_for_execution(
    session_maker: Callable[[], Session], dedup_key: str, timeout_seconds: float, poll_seconds: float = 1.0
) -> Execution | None:
    """Poll until the execution for `dedup_key` is terminal; None on time-out."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        with session_maker() as session:
            execution = session.scalar(select(Execution).where(Execution.dedup_key == dedup_key))
            if execution is not None and execution.status in TERMINAL_STATUSES:
                return execution
        time.sleep(poll_seconds)
    return None
