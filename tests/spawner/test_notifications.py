"""The spawner's part in notifications: `dead_lettered` events and the sender in its loop."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from services.core.crypto import generate_key, keyring_from_value
from services.core.db.models import ExecutionStatus, Notification, Workflow
from services.core.db.session import session_factory
from services.notify.channels import set_channel, validate_channel
from services.spawner.launchers.kube import KubernetesLauncher
from services.spawner.reconciler import Reconciler
from tests.notify.conftest import Receiver
from tests.spawner.conftest import NAMESPACE, make_workflow, manual_message, queue_empty, send, wait_for
from tests.spawner.test_reconciler import START_TIMEOUT, _execution, _put_job, failed


@pytest.fixture
def hook(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    key = generate_key()
    monkeypatch.setenv("INTEGRATION_ENCRYPTION_KEY", key)
    monkeypatch.setenv("CONSOLE_URL", "https://console.example.test/")
    receiver = Receiver().start()
    with session_factory(db)() as session, session.begin():
        set_channel(session, "ops-hook", validate_channel({"type": "webhook", "url": receiver.url}), keyring_from_value(key))
    try:
        yield receiver
    finally:
        receiver.stop()


def with_rules(db: str) -> Workflow:
    workflow = make_workflow(db)
    with session_factory(db)() as session, session.begin():
        row = session.get(Workflow, workflow.id)
        row.definition = {**row.definition, "notify": [{"on": ["dead_lettered"], "channel": "ops-hook"}]}
    return workflow


def test_a_dead_lettered_message_notifies_once_from_the_spawner_loop(db, queues, emulator, hook, start_spawner) -> None:
    workflow = with_rules(db)
    message = manual_message(workflow)
    gone = message.__class__(**{**message.__dict__, "schedule_id": uuid.uuid4(), "dedup_key": "manual:gone"})
    send(queues, gone.to_json())
    spawner = start_spawner(notify_seconds=0.2)
    assert wait_for(lambda: len(hook.requests) == 1 and queue_empty(queues), timeout=20)
    spawner.stop()
    body = hook.requests[0].json()
    assert body["event"] == "dead_lettered" and body["workflow"]["name"] == "hello"
    assert "does not exist" in body["reason"] and body["idempotency_key"] == "dead_lettered:manual:gone:ops-hook"
    assert body["link"] == "https://console.example.test/workflows/hello"
    with session_factory(db)() as session:
        [row] = session.scalars(select(Notification)).all()
    assert row.status == "sent"


def test_dead_letters_without_a_workflow_notify_nobody_and_the_loop_lives(db, queues, emulator, hook, start_spawner) -> None:
    send(queues, "{not json")
    spawner = start_spawner(notify_seconds=0.2)
    assert wait_for(lambda: queue_empty(queues) and spawner.parts.spawner.idle())
    spawner.stop()
    with session_factory(db)() as session:
        assert session.scalars(select(Notification)).all() == []


def test_a_run_the_reconciler_ends_timed_out_notifies_failed_with_the_reason(db, emulator, hook) -> None:
    workflow = make_workflow(db)
    with session_factory(db)() as session, session.begin():
        row = session.get(Workflow, workflow.id)
        row.definition = {**row.definition, "notify": [{"on": ["failed"], "channel": "ops-hook"}]}
    execution = _execution(db, workflow, ExecutionStatus.RUNNING)
    _put_job(emulator, execution, failed("DeadlineExceeded"))
    launcher = KubernetesLauncher(emulator.api_client(), NAMESPACE, start_timeout=START_TIMEOUT)
    reconciler = Reconciler(session_factory(db), launcher, start_timeout=START_TIMEOUT)
    assert reconciler.run_once()["timed_out"] == 1
    assert reconciler.run_once()["timed_out"] == 0
    with session_factory(db)() as session:
        [row] = session.scalars(select(Notification)).all()
    assert row.event == "failed" and row.execution_id == execution.id
    assert row.details["status"] == "timed_out" and row.details["attempt"] == 1 and row.details["max_attempts"] == 1
