"""`failed` and `recovered` from real runs (the runner in-process), delivered to a real webhook."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from services.core.db.models import Execution, Notification
from services.core.db.session import session_factory
from services.core.executions import insert_execution
from services.core.messages import RunMessage, retry_dedup_key, schedule_dedup_key
from services.core.workflows import apply_workflow, parse_workflow
from services.dispatcher.schedules import ScheduleSpec, create_schedule
from services.runtime.runner import execute
from tests.notify.conftest import SECRET

WORKFLOW = """
name: nightly-report
retry: {max_attempts: 2, backoff_seconds: 30, backoff_multiplier: 2}
notify:
  - on: [failed, recovered]
    channel: ops-hook
steps:
  - {id: check, type: fail, if: "{{ input.fail }}", with: {message: "upstream said 503"}}
  - {id: done, type: log, with: {message: "ok"}}
"""


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does (docs/notifications.md): recompute the HMAC over `<timestamp>.<body>`."""
    timestamp = headers["x-signature-timestamp"]
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["x-signature"]) and abs(time.time() - int(timestamp)) < 300


def run(db: str, execution_id: uuid.UUID, workflow_id: uuid.UUID) -> int:
    env = {"DATABASE_URL": db, "WORKFLOW_ID": str(workflow_id), "EXECUTION_ID": str(execution_id)}
    return execute(env)


def new_execution(db: str, workflow_id: uuid.UUID, fail: bool, attempt: int = 1, retry_of: uuid.UUID | None = None):
    dedup = retry_dedup_key(retry_of, attempt) if retry_of else f"manual:{uuid.uuid4()}"
    message = RunMessage(
        trigger="retry" if retry_of else "manual", dedup_key=dedup, workflow_id=workflow_id,
        attempt=attempt, retry_of=retry_of, input={"fail": fail},
    )
    with session_factory(db)() as session, session.begin():
        execution, _ = insert_execution(session, message)
        return execution.id


def test_one_signed_post_per_final_failure_none_for_retried_attempts_then_recovered(
    db, receiver, add_channel, make_sender
) -> None:
    add_channel("ops-hook", {"type": "webhook", "url": receiver.url, "secret": SECRET})
    with session_factory(db)() as session, session.begin():
        workflow_id = apply_workflow(session, parse_workflow(WORKFLOW))[0].id
    sender = make_sender()

    first = new_execution(db, workflow_id, fail=True)
    assert run(db, first, workflow_id) == 1
    assert sender.run_once().attempted == 0  # attempt 1 of 2 will be retried: nobody is told
    assert receiver.requests == []

    second = new_execution(db, workflow_id, fail=True, attempt=2, retry_of=first)
    assert run(db, second, workflow_id) == 1
    assert sender.run_once().sent == 1
    assert sender.run_once().attempted == 0
    [failed] = receiver.requests
    assert verify(SECRET, failed.headers, failed.body)
    assert not verify("another-secret", failed.headers, failed.body)
    body = failed.json()
    assert body["event"] == "failed"
    assert body["execution"] == {
        "id": str(second), "status": "failed", "attempt": 2, "max_attempts": 2,
        "error": body["execution"]["error"],
    }
    assert "upstream said 503" in body["execution"]["error"]
    assert body["link"] == f"https://console.example.test/executions/{second}"
    assert body["idempotency_key"] == f"failed:{second}:ops-hook" == failed.headers["idempotency-key"]
    assert "nightly-report" in body["text"] and "attempt 2 of 2" in body["text"] and "status failed" in body["text"]

    third = new_execution(db, workflow_id, fail=False)
    assert run(db, third, workflow_id) == 0
    fourth = new_execution(db, workflow_id, fail=False)
    assert run(db, fourth, workflow_id) == 0  # a second success in a row is not a recovery
    assert sender.run_once().sent == 1
    assert [r.json()["event"] for r in receiver.requests] == ["failed", "recovered"]
    recovered = receiver.requests[1]
    assert verify(SECRET, recovered.headers, recovered.body)
    assert recovered.json()["execution"]["id"] == str(third)


def test_success_after_a_retried_failure_is_not_a_recovery(db, receiver, add_channel, make_sender) -> None:
    add_channel("ops-hook", {"type": "webhook", "url": receiver.url, "secret": SECRET})
    with session_factory(db)() as session, session.begin():
        workflow_id = apply_workflow(session, parse_workflow(WORKFLOW))[0].id
    first = new_execution(db, workflow_id, fail=True)
    assert run(db, first, workflow_id) == 1
    # The retry succeeds (the input says fail, so flip it in the row as a flaky upstream would).
    second = new_execution(db, workflow_id, fail=True, attempt=2, retry_of=first)
    with session_factory(db)() as session, session.begin():
        session.get(Execution, second).input = {"fail": False}
    assert run(db, second, workflow_id) == 0
    make_sender().run_once()
    assert receiver.requests == []
    with session_factory(db)() as session:
        assert session.scalars(select(Notification)).all() == []


def test_a_failing_channel_never_fails_or_blocks_the_run(db, receiver, add_channel, make_sender) -> None:
    receiver.stop()  # nothing listens on its port any more
    add_channel("ops-hook", {"type": "webhook", "url": receiver.url, "secret": SECRET})
    with session_factory(db)() as session, session.begin():
        workflow_id = apply_workflow(session, parse_workflow(WORKFLOW.replace("max_attempts: 2", "max_attempts: 1")))[0].id
    execution_id = new_execution(db, workflow_id, fail=True)
    assert run(db, execution_id, workflow_id) == 1
    summary = make_sender().run_once()
    assert summary.retrying == 1
    with session_factory(db)() as session:
        assert session.get(Execution, execution_id).status == "failed"
        row = session.scalars(select(Notification)).one()
        assert row.status == "pending" and row.attempts == 1 and "ConnectError" in row.last_error


def test_recovered_is_per_schedule(db, add_channel, receiver) -> None:
    add_channel("ops-hook", {"type": "webhook", "url": receiver.url})
    with session_factory(db)() as session, session.begin():
        workflow_id = apply_workflow(session, parse_workflow(WORKFLOW.replace("max_attempts: 2", "max_attempts: 1")))[0].id
        a, b = (create_schedule(session, ScheduleSpec(name=n, workflow="nightly-report", cron="0 * * * *")).id for n in "ab")

    def scheduled(schedule_id: uuid.UUID, hour: int, fail: bool) -> uuid.UUID:
        fire = datetime(2026, 11, 29, hour, tzinfo=UTC)
        message = RunMessage(trigger="schedule", dedup_key=schedule_dedup_key(schedule_id, fire), workflow_id=workflow_id,
                             schedule_id=schedule_id, scheduled_for=fire, input={"fail": fail})
        with session_factory(db)() as session, session.begin():
            execution_id = insert_execution(session, message)[0].id
        run(db, execution_id, workflow_id)
        return execution_id

    scheduled(a, 1, fail=True)
    scheduled(b, 2, fail=False)  # another schedule's success says nothing about a
    recovered = scheduled(a, 3, fail=False)
    with session_factory(db)() as session:
        events = [(n.event, n.execution_id) for n in session.scalars(select(Notification).order_by(Notification.id))]
    assert [e for e, _ in events] == ["failed", "recovered"] and events[1][1] == recovered
