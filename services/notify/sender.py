"""The outbox sender: deliver due notifications at least once, with back-off, and record each try.

One row per transaction: claim it with `FOR UPDATE SKIP LOCKED` (so the spawner's loop and the
dispatcher's tick, or several replicas, never work on the same row), deliver it, record the
outcome, commit. A process killed between delivering and committing leaves the row pending with
the same idempotency key, so the next pass sends it again (at least once, never lost) and a
receiver can recognise the repeat. A failure is recorded on the row with its error and retried
after `backoff_seconds * 2^(attempts-1)` (capped) until `max_attempts`, then the row is `failed`.

A pass is bounded (rows and seconds) and never raises: a slow or broken channel delays other
notifications a little, never a run or the loop that called it. A channel whose delivery just
failed rests (its other rows are not tried) for the first back-off, so one channel that is down
costs one time-out per rest, not one per row, and the other channels' rows go ahead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.crypto import Keyring
from services.core.db.models import Notification, NotificationStatus
from services.core.errors import ConfigError, NotFoundError
from services.core.settings import Settings
from services.notify.channels import ChannelConfig, read_channel
from services.notify.delivery import TIMEOUT_SECONDS, DeliveryError, Notice, deliver

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class SenderOptions:
    max_attempts: int = 8
    backoff_seconds: float = 30.0
    max_backoff_seconds: float = 3600.0
    #: One pass delivers at most this many rows and stops starting new ones after this long.
    batch: int = 100
    budget_seconds: float = 20.0
    timeout_seconds: float = TIMEOUT_SECONDS


@dataclass
class SendSummary:
    sent: int = 0
    retrying: int = 0
    failed: int = 0

    @property
    def attempted(self) -> int:
        return self.sent + self.retrying + self.failed


def backoff(options: SenderOptions, attempts: int) -> timedelta:
    """Delay before the next try after `attempts` failed ones."""
    seconds = options.backoff_seconds * 2 ** max(0, min(attempts - 1, 20))
    return timedelta(seconds=min(seconds, options.max_backoff_seconds))


def utc_now() -> datetime:
    return datetime.now(UTC)


class Sender:
    def __init__(
        self,
        session_maker: Callable[[], Session],
        keyring: Callable[[], Keyring],
        console_url: str | None = None,
        options: SenderOptions | None = None,
        clock: Callable[[], datetime] = utc_now,
        after_send: Callable[[Notification], None] | None = None,
    ) -> None:
        """`keyring` is called per delivery, so a missing key is an error on the row, not a crash.

        `after_send` runs after a successful delivery and before its record is committed (tests
        kill the process there).
        """
        self.session_maker = session_maker
        self.keyring = keyring
        self.console_url = console_url
        self.options = options or SenderOptions()
        self.clock = clock
        self.after_send = after_send
        #: Channels whose last delivery failed, and until when their rows wait.
        self.resting: dict[str, datetime] = {}

    def run_once(self) -> SendSummary:
        """Deliver what is due now; never raises."""
        summary = SendSummary()
        deadline = time.monotonic() + self.options.budget_seconds
        for _ in range(self.options.batch):
            if time.monotonic() > deadline:
                break
            try:
                outcome = self._deliver_next()
            except Exception as error:  # the database is down, say: try again next pass
                log.warning("notification pass failed", extra={"error": f"{type(error).__name__}: {error}"})
                break
            if outcome is None:
                break
            setattr(summary, outcome, getattr(summary, outcome) + 1)
        return summary

    def _claim(self, session: Session, now: datetime) -> Notification | None:
        self.resting = {channel: until for channel, until in self.resting.items() if until > now}
        query = (
            select(Notification)
            .where(Notification.status == NotificationStatus.PENDING.value, Notification.next_attempt_at <= now)
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if self.resting:
            query = query.where(Notification.channel.not_in(list(self.resting)))
        return session.scalar(query)

    def _config(self, session: Session, name: str) -> ChannelConfig:
        return read_channel(session, name, self.keyring())

    def _deliver_next(self) -> str | None:
        """Claim, deliver and record one row; returns the outcome name, None when nothing is due."""
        with self.session_maker() as session, session.begin():
            row = self._claim(session, self.clock())
            if row is None:
                return None
            error: str | None = None
            try:
                config = self._config(session, row.channel)
                notice = Notice(row.event, dict(row.details or {}), row.idempotency_key, row.created_at)
                deliver(config, notice, self.console_url, self.options.timeout_seconds)
            except (DeliveryError, NotFoundError, ConfigError) as failure:
                error = str(failure)
            except Exception as failure:  # a bug in a transport must not wedge the outbox
                log.exception("notification delivery crashed", extra={"notification_id": row.id})
                error = f"{type(failure).__name__}: {failure}"
            now = self.clock()
            row.attempts += 1
            row.updated_at = now
            extra = {"notification_id": row.id, "event": row.event, "channel": row.channel,
                     "execution_id": str(row.execution_id) if row.execution_id else None, "attempt": row.attempts}
            if error is None:
                self.resting.pop(row.channel, None)
                if self.after_send is not None:
                    self.after_send(row)
                row.status = NotificationStatus.SENT.value
                row.sent_at = now
                row.last_error = None
                log.info("notification sent", extra=extra)
                return "sent"
            row.last_error = " ".join(error.split())[:MAX_ERROR_CHARS]
            self.resting[row.channel] = now + backoff(self.options, 1)
            if row.attempts >= self.options.max_attempts:
                row.status = NotificationStatus.FAILED.value
                log.warning("notification failed for good", extra={**extra, "error": row.last_error})
                return "failed"
            row.next_attempt_at = now + backoff(self.options, row.attempts)
            log.info("notification delivery failed; will retry", extra={**extra, "error": row.last_error})
            return "retrying"


def sender_from_settings(session_maker: Callable[[], Session], settings: Settings, **options: float) -> Sender | None:
    """The sender a service runs, or None where the service does not hold the key that decrypts
    channels (INTEGRATION_ENCRYPTION_KEY): such a process must not claim deliveries it can only
    fail, which would spend their attempts. In the cluster the dispatcher delivers; on one
    machine the spawner does too, every few seconds."""
    from services.core.crypto import keyring_from_value

    if not settings.encryption_keys:
        return None
    keys = settings.encryption_keys
    return Sender(session_maker, lambda: keyring_from_value(keys), settings.console_url, SenderOptions(**options))  # type: ignore[arg-type]


def send_test(session: Session, name: str, keyring: Keyring, console_url: str | None) -> None:
    """`wfctl channels test NAME`: deliver a sample notification now (raises DeliveryError)."""
    config = read_channel(session, name, keyring)
    details = {
        "workflow": "example-workflow",
        "schedule": "example-schedule",
        "timezone": "UTC",
        "fire_time": utc_now().replace(second=0, microsecond=0),
        "status": "test",
    }
    now = utc_now()
    deliver(config, Notice("test", details, f"test:{name}:{now.isoformat()}", now), console_url)
