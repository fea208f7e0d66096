"""The outbox sender against a real webhook: outages, bounded retries, kills, concurrent senders."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from sqlalchemy import select

from services.core.db.models import Notification
from services.core.db.session import session_factory
from services.notify.outbox import enqueue
from services.notify.sender import SenderOptions, backoff
from tests.notify.conftest import SECRET

ROOT = Path(__file__).resolve().parents[2]


def queue_notifications(db: str, count: int, channel: str = "ops-hook") -> list[str]:
    keys = []
    with session_factory(db)() as session, session.begin():
        for _ in range(count):
            execution_id = uuid.uuid4()
            details = {"workflow": "nightly", "status": "failed", "execution_id": execution_id, "attempt": 1}
            enqueue(session, "failed", str(execution_id), [channel], details, execution_id=execution_id)
            keys.append(f"failed:{execution_id}:{channel}")
    return keys


def rows(db: str) -> list[Notification]:
    with session_factory(db)() as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def test_receiver_down_for_three_minutes_then_back_gets_every_notification_once(
    db, receiver, add_channel, make_sender, clock
) -> None:
    add_channel("ops-hook", {"type": "webhook", "url": receiver.url, "secret": SECRET})
    keys = queue_notifications(db, 5)
    sender = make_sender()
    receiver.stop()  # the port is closed: connection refused
    for _ in range(18):  # three minutes of passes every 10 s
        sender.run_once()
        clock.advance(seconds=10)
    assert all(r.status == "pending" for r in rows(db))
    # The channel rests 30 s after each failure: one try per rest, not one per row per pass,
    # so a channel that is down spends few of its rows' attempts.
    assert 3 <= sum(r.attempts for r in rows(db)) <= 7
    assert all("ConnectError" in r.last_error for r in rows(db) if r.attempts)
    receiver.start()  # the same port again
    for _ in range(60):  # up to ten more minutes
        sender.run_once()
        clock.advance(seconds=10)
    assert sorted(r.headers["idempotency-key"] for r in receiver.requests) == sorted(keys)
    assert all(r.status == "sent" and r.sent_at is not None and r.last_error is None for r in rows(db))


def test_an_always_failing_receiver_ends_failed_after_bounded_attempts_and_is_listed(
    db, receiver, add_channel, make_sender, clock, wfctl
) -> None:
    add_channel("ops-hook", {"type": "webhook", "url": receiver.url, "secret": SECRET})
    queue_notifications(db, 1)
    receiver.status = 500
    sender = make_sender(max_attempts=4, backoff_seconds=30)
    outcomes = []
    for _ in range(100):
        summary = sender.run_once()
        outcomes += ["retrying"] * summary.retrying + ["failed"] * summary.failed
        clock.advance(seconds=30)
    assert outcomes == ["retrying", "retrying", "retrying", "failed"]
    [row] = rows(db)
    assert row.status == "failed" and row.attempts == 4
    assert row.last_error.startswith("the webhook answered HTTP 500: unavailable: cannot POST ***")
    assert "T0KEN" not in row.last_error

    listed = wfctl("notifications", "list", "--status", "failed", "--output", "json")
    assert listed.code == 0
    [item] = listed.json()
    assert item["status"] == "failed" and item["attempts"] == 4 and "HTTP 500" in item["last_error"]
    table = wfctl("notifications", "list", "--status", "failed")
    assert "HTTP 500" in table.out and "failed" in table.out and "T0KEN" not in listed.out + table.out
    assert wfctl("notifications", "list", "--status", "sent", "--output", "json").json() == []
    bad = wfctl("notifications", "list", "--status", "lost")
    assert bad.code == 2 and bad.err.strip() == "error: status: 'lost' is not one of pending, sent, failed"


def test_backoff_doubles_and_is_capped() -> None:
    options = SenderOptions(backoff_seconds=30, max_backoff_seconds=300)
    assert [backoff(options, n).total_seconds() for n in range(1, 6)] == [30, 60, 120, 240, 300]


KILLED_SENDER = """
import os
from services.core.crypto import keyring_from_env
from services.core.db.session import session_factory
from services.notify.sender import Sender

Sender(session_factory(os.environ["DATABASE_URL"]), keyring_from_env,
       after_send=lambda row: os._exit(137)).run_once()
"""


def test_killed_between_send_and_record_resends_with_the_same_idempotency_key(
    db, receiver, add_channel, make_sender, encryption_key
) -> None:
    add_channel("ops-hook", {"type": "webhook", "url": receiver.url, "secret": SECRET})
    [key] = queue_notifications(db, 1)
    env = {**os.environ, "DATABASE_URL": db, "INTEGRATION_ENCRYPTION_KEY": encryption_key}
    killed = subprocess.run([sys.executable, "-c", KILLED_SENDER], cwd=ROOT, env=env, timeout=60)
    assert killed.returncode == 137
    assert [r.headers["idempotency-key"] for r in receiver.requests] == [key]
    [row] = rows(db)
    assert row.status == "pending" and row.attempts == 0  # the record never committed

    assert make_sender().run_once().sent == 1
    assert [r.headers["idempotency-key"] for r in receiver.requests] == [key, key]
    assert receiver.requests[0].json()["idempotency_key"] == receiver.requests[1].json()["idempotency_key"] == key
    assert rows(db)[0].status == "sent"


def test_concurrent_senders_never_deliver_the_same_row_twice(db, receiver, add_channel, make_sender) -> None:
    add_channel("ops-hook", {"type": "webhook", "url": receiver.url})
    keys = queue_notifications(db, 30)
    senders = [make_sender() for _ in range(3)]
    threads = [threading.Thread(target=s.run_once) for s in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    received = [r.headers["idempotency-key"] for r in receiver.requests]
    assert sorted(received) == sorted(keys)
    assert "x-signature" not in receiver.requests[0].headers  # no secret, no signature


def test_a_missing_channel_or_key_is_an_error_on_the_row_not_a_crash(db, make_sender, monkeypatch) -> None:
    queue_notifications(db, 1, channel="nowhere")
    assert make_sender().run_once().retrying == 1
    [row] = rows(db)
    assert row.last_error == "channel: no channel named 'nowhere'"


def test_a_channel_that_does_not_answer_does_not_hold_up_the_others(db, receiver, add_channel, make_sender) -> None:
    """20 rows for a receiver that accepts connections and never answers, queued first, then one
    for a healthy receiver: the healthy one is delivered in the first pass."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # connections complete in the backlog; nothing ever answers
        port = silent.getsockname()[1]
        add_channel("silent", {"type": "webhook", "url": f"http://127.0.0.1:{port}/hook", "secret": SECRET})
        add_channel("ops-hook", {"type": "webhook", "url": receiver.url, "secret": SECRET})
        queue_notifications(db, 20, channel="silent")
        [healthy] = queue_notifications(db, 1, channel="ops-hook")
        summary = make_sender(timeout_seconds=0.5, budget_seconds=5).run_once()
    assert [r.headers["idempotency-key"] for r in receiver.requests] == [healthy]
    assert (summary.sent, summary.retrying) == (1, 1)  # one time-out for the silent channel, not 20
